"""The duck-typed verifier protocol (verifiers/protocol.py): plain objects that never import this
pack are accepted, malformed ones are refused with messages naming what is wrong, and every
result is validated whoever produced it."""

from types import SimpleNamespace

import pytest
import torch

from eacps.verifiers.base import Verifier, VerifierResult
from eacps.verifiers.protocol import VerifierError, check_verifier, score, validate_result


class Mean:
    """A verifier as another pack would write it: no import of this pack, a plain result object."""

    kind = "mean_value"
    identity = "mean_value:v1"
    aspects = ("brightness",)
    uses_reference = False
    requires_reference = False
    patchers: list = []

    def __init__(self, *fixed):
        self.fixed = fixed  # (result,) to return that instead of scoring
        self.seen_reference = "unset"

    def score(self, images, prompt, reference):
        self.seen_reference = reference
        if self.fixed:
            return self.fixed[0]
        v = images.mean(dim=(1, 2, 3)) * 10
        return SimpleNamespace(scores={"brightness": v}, raw={"brightness": v / 10})


def images(b=3):
    return torch.rand(b, 8, 8, 3, generator=torch.Generator().manual_seed(0))


def test_plain_object_scores_and_result_is_normalised():
    imgs = images()
    result = score(Mean(), imgs, "p")
    expected = imgs.double().mean(dim=(1, 2, 3)) * 10  # independent of the verifier's own float32 maths
    assert isinstance(result, VerifierResult)
    assert result.scores["brightness"].dtype == torch.float64
    assert torch.allclose(result.scores["brightness"], expected, atol=1e-5)


def test_reference_withheld_from_verifiers_that_do_not_use_it():
    v = Mean()
    score(v, images(), "p", torch.rand(1, 4, 4, 3))
    assert v.seen_reference is None


def test_own_base_class_satisfies_the_protocol():
    class Own(Verifier):
        kind = "own"
        aspects = ("a",)
        _identity = "own:1"

        def _score(self, images, prompt, reference):
            v = torch.full((images.shape[0],), 3.0)
            return VerifierResult(scores={"a": v}, raw={"a": v})

    check_verifier(Own())
    assert score(Own(), images(2), "p").scores["a"].tolist() == [3.0, 3.0]


def _with(**changes):
    v = Mean()
    for name, value in changes.items():
        setattr(v, name, value)
    return v


@pytest.mark.parametrize("changes, message", [
    ({"kind": 3}, r"'kind' must be a str .* got a int"),
    ({"kind": "a.b"}, r"'kind' must be a str of letters"),
    ({"identity": ""}, r"'identity' must be a non-empty str"),
    ({"aspects": ()}, r"'aspects' must be a non-empty tuple"),
    ({"aspects": "brightness"}, r"'aspects' must be a non-empty tuple of str, got a str"),
    ({"aspects": ("a", "a")}, r"'aspects' must be unique, repeated: \['a'\]"),
    ({"aspects": ("a b",)}, r"'aspects' entries must be str"),
    ({"uses_reference": "yes"}, r"'uses_reference' must be a bool"),
    ({"uses_reference": False, "requires_reference": True}, r"'requires_reference' is True but 'uses_reference'"),
    ({"patchers": None}, r"'patchers' must be a list of ComfyUI ModelPatchers"),
    ({"score": 5}, r"'score' must be a method"),
])
def test_malformed_attributes_are_named(changes, message):
    with pytest.raises(VerifierError, match=message) as info:
        check_verifier(_with(**changes))
    assert "not an EACPS verifier" in str(info.value) and "docs/verifiers.md" in str(info.value)


def test_everything_missing_is_listed_at_once():
    with pytest.raises(VerifierError) as info:
        check_verifier(object())
    msg = str(info.value)
    assert msg.startswith("builtins.object is not an EACPS verifier")
    for name in ("kind", "identity", "aspects", "uses_reference", "requires_reference", "patchers", "score"):
        assert f"'{name}'" in msg and "missing" in msg


def test_each_problem_is_named_in_one_sentence():
    class Two(Mean):
        kind = ""
        uses_reference = "no"

    with pytest.raises(VerifierError) as info:
        check_verifier(Two())
    assert str(info.value) == (
        f"{Two.__module__}.{Two.__qualname__} is not an EACPS verifier: "
        "'kind' must be a str of letters, digits, '_' or '-', got a str (''); "
        "'uses_reference' must be a bool, got a str ('no'). See docs/verifiers.md, 'Verifier protocol'.")


def test_a_raising_identity_property_counts_as_missing():
    class NoIdentity(Verifier):
        kind = "x"
        aspects = ("a",)

        def _score(self, images, prompt, reference):
            raise AssertionError("never called")

    with pytest.raises(VerifierError, match="'identity' must be a non-empty str, got missing"):
        check_verifier(NoIdentity())


B = 3
GOOD = torch.tensor([1.0, 5.0, 9.0])


@pytest.mark.parametrize("result, message", [
    (None, r"returned a NoneType; expected an object with 'scores' and 'raw'"),
    ({"brightness": GOOD}, r"returned a dict; expected an object with 'scores' and 'raw'"),
    (SimpleNamespace(scores=[GOOD], raw={"brightness": GOOD}), r"result.scores must be a mapping"),
    (SimpleNamespace(scores={"other": GOOD}, raw={"brightness": GOOD}), r"has aspects \['other'\], declared \['brightness'\]"),
    (SimpleNamespace(scores={"brightness": GOOD}, raw={}), r"result.raw has aspects \[\]"),
    (SimpleNamespace(scores={"brightness": [1.0, 5.0, 9.0]}, raw={"brightness": GOOD}), r"is a list, expected a torch tensor \[3\]"),
    (SimpleNamespace(scores={"brightness": GOOD[:2]}, raw={"brightness": GOOD}), r"shape \(2,\), expected \(3,\)"),
    (SimpleNamespace(scores={"brightness": GOOD[None]}, raw={"brightness": GOOD}), r"shape \(1, 3\), expected \(3,\)"),
    (SimpleNamespace(scores={"brightness": GOOD}, raw={"brightness": GOOD[:1]}), r"of result.raw has shape \(1,\)"),
    (SimpleNamespace(scores={"brightness": torch.tensor([1.0, float("nan"), 2.0])}, raw={"brightness": GOOD}),
     r"non-finite score for image\(s\) at batch position\(s\) \[1\]"),
    (SimpleNamespace(scores={"brightness": torch.tensor([True, False, True])}, raw={"brightness": GOOD}),
     r"result.scores\['brightness'\] has dtype torch.bool, expected a real number per image"),
    (SimpleNamespace(scores={"brightness": GOOD.to(torch.complex64)}, raw={"brightness": GOOD}),
     r"has dtype torch.complex64, expected a real number per image"),
    (SimpleNamespace(scores={"brightness": torch.tensor([1.0, 10.5, 2.0])}, raw={"brightness": GOOD}), r"left \[0, 10\]"),
    (SimpleNamespace(scores={"brightness": torch.tensor([-0.1, 1.0, 2.0])}, raw={"brightness": GOOD}), r"left \[0, 10\]"),
])
def test_bad_results_are_refused_naming_the_verifier(result, message):
    with pytest.raises(VerifierError, match=message) as info:
        score(Mean(result), images(B), "p")
    assert str(info.value).startswith("mean_value:v1: ")


def test_raw_values_may_be_non_finite():
    raw = torch.tensor([float("inf"), 0.0, -1.0])
    result = validate_result(SimpleNamespace(scores={"a": GOOD}, raw={"a": raw}), "v", ("a",), B)
    assert result.raw["a"].tolist() == raw.double().tolist()


@pytest.mark.parametrize("imgs, ref, message", [
    (torch.rand(3, 3, 8, 8), None, r"expected IMAGE \[B, H, W, 3\]"),
    (torch.rand(0, 8, 8, 3), None, r"with B >= 1"),
    (torch.rand(2, 8, 8, 3), torch.rand(2, 8, 8, 3), r"reference must be one image"),
    (torch.rand(2, 8, 8, 3), torch.rand(1, 8, 3), r"reference must be one image \[1, H, W, 3\], got \(1, 8, 3\)"),
])
def test_bad_inputs_are_refused_before_scoring(imgs, ref, message):
    v = Mean()
    with pytest.raises(VerifierError, match=message):
        score(v, imgs, "p", ref)
    assert v.seen_reference == "unset"


def test_required_reference_missing_is_refused():
    v = _with(uses_reference=True, requires_reference=True)
    with pytest.raises(VerifierError, match="needs a reference image"):
        score(v, images(), "p")


def test_non_finite_scores_name_each_image_and_the_cause_to_check():
    from eacps.verifiers.protocol import NonFiniteScores

    scores = torch.tensor([1.0, float("nan"), float("inf")])
    with pytest.raises(NonFiniteScores) as info:
        validate_result(SimpleNamespace(scores={"brightness": scores}, raw={"brightness": GOOD}), "mean_value:v1",
                        ("brightness",), B)
    assert str(info.value) == (
        "mean_value:v1: non-finite score for image(s) at batch position(s) [1, 2] of 3: mean_value:v1 gave a "
        "non-finite 'brightness' score (nan); mean_value:v1 gave a non-finite 'brightness' score (inf). Check those "
        "images (a NaN decode from an fp16 VAE gives this) before blaming the verifier")
    assert sorted(info.value.positions) == [1, 2]
