"""The verifier interface's validation: no verifier can hand the search a bad score."""

import pytest
import torch

from eacps.verifiers.base import Verifier, VerifierError, VerifierResult, linear_to_score


class Constant(Verifier):
    kind = "constant"
    aspects = ("a",)

    def __init__(self, value):
        self.value = value

    @property
    def identity(self):
        return f"constant:{self.value}"

    def _score(self, images, prompt, reference):
        v = torch.full((images.shape[0],), self.value, dtype=torch.float64)
        return VerifierResult(scores={"a": v}, raw={"a": v})


def images(b=3):
    return torch.rand(b, 8, 8, 3)


def test_valid_scores_pass_through():
    result = Constant(7.5).score(images(), "p")
    assert result.scores["a"].tolist() == [7.5, 7.5, 7.5]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), -1.0, 10.5])
def test_bad_scores_raise(value):
    with pytest.raises(VerifierError):
        Constant(value).score(images(), "p")


def test_bad_image_layout_raises():
    with pytest.raises(VerifierError, match=r"\[B, H, W, 3\]"):
        Constant(1.0).score(torch.rand(3, 3, 8, 8), "p")


def test_linear_mapping_endpoints():
    raw = torch.tensor([-1.0, 0.0, 0.5, 1.0, 2.0])
    assert linear_to_score(raw, 0.0, 1.0).tolist() == [0.0, 0.0, 5.0, 10.0, 10.0]


def test_an_unknown_open_clip_architecture_is_refused_before_loading(tmp_path):
    from eacps.verifiers.openclip import OpenClipBackbone

    missing = str(tmp_path / "never_read.safetensors")
    with pytest.raises(VerifierError, match=r"^CLIP score verifier: 'ViT-Nope' is not an open_clip architecture; "
                                            r"choose one of open_clip.list_models\(\) \(e.g. ViT-B-32"):
        OpenClipBackbone("ViT-Nope", missing, "CLIP score verifier")


class Counted(Constant):
    """A verifier whose text encoder reads a fixed number of tokens, as CLIP's 77."""

    def __init__(self, counted):
        super().__init__(5.0)
        self.counted = counted

    def prompt_tokens(self, prompt):
        return self.counted


def test_a_prompt_cut_is_reported_only_when_the_prompt_has_more_tokens_than_are_read():
    assert Counted((80, 77)).prompt_cut("p") == ("constant:5.0 read only the first 77 of the prompt's 80 tokens; "
                                                 "the rest did not count in its score")
    assert Counted((77, 77)).prompt_cut("p") is None
    assert Counted((12, 77)).prompt_cut("p") is None
    assert Counted(None).prompt_cut("p") is None  # a verifier that reads the whole prompt


def test_a_verifier_without_its_scoring_method_cannot_be_made():
    class NoScore(Verifier):
        kind = "incomplete"
        aspects = ("a",)

    with pytest.raises(TypeError, match="_score"):
        NoScore()
