"""The weight-free technical verifier: its scores move the right way."""

import pytest
import torch

from eacps.verifiers.technical import TechnicalQualityVerifier


def test_sharp_beats_blurred_and_midtones_beat_clipped():
    gen = torch.Generator().manual_seed(0)
    sharp = torch.rand(1, 64, 64, 3, generator=gen) * 0.6 + 0.2
    blurred = torch.nn.functional.avg_pool2d(sharp.permute(0, 3, 1, 2), 9, stride=1, padding=4,
                                             count_include_pad=False).permute(0, 2, 3, 1)
    white = torch.ones(1, 64, 64, 3)
    v = TechnicalQualityVerifier(size=64)
    r = v.score(torch.cat([sharp, blurred, white]), "any prompt")
    s, e = r.scores["sharpness"].tolist(), r.scores["exposure"].tolist()
    assert s[0] > s[1] > s[2] == 0.0
    assert e[0] > 8.0 and e[2] == 0.0
    assert all(0.0 <= x <= 10.0 for x in s + e)
    assert set(r.raw) == {"sharpness", "exposure"}


def test_resizing_makes_identity_and_scores_size_aware():
    assert TechnicalQualityVerifier(256).identity != TechnicalQualityVerifier(512).identity
    img = torch.rand(2, 40, 50, 3, generator=torch.Generator().manual_seed(1))
    a = TechnicalQualityVerifier(0).score(img, "")
    b = TechnicalQualityVerifier(100).score(img, "")
    assert a.scores["sharpness"].shape == b.scores["sharpness"].shape == (2,)


def test_an_images_score_does_not_depend_on_the_rest_of_its_batch():
    gen = torch.Generator().manual_seed(2)
    img = torch.rand(1, 48, 40, 3, generator=gen) * 0.5 + 0.25
    neighbours = [
        torch.ones(1, 48, 40, 3),  # blown out
        torch.zeros(1, 48, 40, 3),  # black
        torch.rand(1, 48, 40, 3, generator=gen),  # noise
        img.flip(1) * 0.3,  # dark, other structure
    ]
    for size in (0, 32, 96):
        v = TechnicalQualityVerifier(size=size)
        alone = v.score(img, "")
        for others in (neighbours[:1], neighbours[1:3], neighbours):
            batch = torch.cat([*others[: len(others) // 2], img, *others[len(others) // 2:]])
            together = v.score(batch, "")
            at = len(others) // 2
            for aspect in ("sharpness", "exposure"):
                assert together.scores[aspect][at].item() == pytest.approx(alone.scores[aspect].item(), abs=1e-9)
                assert together.raw[aspect][at].item() == pytest.approx(alone.raw[aspect].item(), abs=1e-9)
            # and each neighbour scores as it does alone
            for j, other in enumerate(others):
                k = j if j < at else j + 1
                single = v.score(other, "")
                assert together.scores["exposure"][k].item() == pytest.approx(single.scores["exposure"].item(),
                                                                              abs=1e-9)


def test_size_is_checked_and_names_the_verifier():
    for bad in (-1, True, 1.5, "512"):
        with pytest.raises(ValueError, match=r"^size = .*: use 0 \(native\) or a positive number of pixels$"):
            TechnicalQualityVerifier(bad)
    # the identity keys the score cache and names the verifier in reports: a stable, versioned name
    assert TechnicalQualityVerifier(64).identity == "technical-v1-size64"
    assert TechnicalQualityVerifier(0).identity == "technical-v1-size0"


def test_pixels_outside_0_1_count_as_clipped_at_0_and_1():
    """A decode can overshoot [0, 1] (ComfyUI clamps only when saving): the verifier scores what
    would be saved, the image clamped to [0, 1]."""
    gen = torch.Generator().manual_seed(3)
    over = torch.rand(2, 32, 32, 3, generator=gen) * 1.6 - 0.3  # about a third of the values outside [0, 1]
    v = TechnicalQualityVerifier(0)
    got, clamped = v.score(over, ""), v.score(over.clamp(0, 1), "")
    for aspect in ("sharpness", "exposure"):
        assert torch.equal(got.scores[aspect], clamped.scores[aspect]), aspect
