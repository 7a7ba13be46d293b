"""Preference verifiers (PickScore, HPSv2, ImageReward): tiny real-format models loaded through
their loader nodes inside a real ComfyUI prompt, then scored."""

from __future__ import annotations

import pytest
import torch
from verifier_checks import check_verifier, load_verifier, make_images
from verifier_models import CALIBRATION_IMAGES, CALIBRATION_PROMPT, TINY_CLIP

from harness.inprocess import PromptInvalid

pytestmark = pytest.mark.host


def assert_spread(scores: torch.Tensor) -> None:
    """The mapping is exercised, not only its clamps: at least 3 of the 5 scores strictly inside (0, 10)
    and 2 points or more between the lowest and the highest (tests/verifier_models.py calibrates the
    tiny models for this), so a changed mapping range changes the scores the tests compare."""
    inside = int(((scores > 0) & (scores < 10)).sum())
    assert inside >= 3 and float(scores.max() - scores.min()) >= 2, scores


def test_pickscore(comfy, captured, preference_files):
    v = load_verifier(comfy, captured, "EACPS_LoadPickScoreVerifier", {"model_folder": "tiny_pickscore"})
    assert v.aspects == ("pickscore",) and v.identity == "pickscore:tiny_pickscore"
    result = check_verifier(v, make_images(5), "a red apple")
    expected = ((result.raw["pickscore"] - 16) / 8 * 10).clamp(0, 10)
    assert torch.allclose(result.scores["pickscore"], expected)
    assert_spread(result.scores["pickscore"])
    assert result.raw["pickscore"].abs().max() <= 100 + 1e-6  # logit_scale.exp() * cos


def test_hpsv2(comfy, captured, preference_files):
    v = load_verifier(comfy, captured, "EACPS_LoadHPSv2Verifier",
                      {"arch": TINY_CLIP, "weights": "tiny_hps.pt", "download": False})
    assert v.aspects == ("hpsv2",)
    result = check_verifier(v, make_images(5), "a red apple")
    assert (result.raw["hpsv2"].abs() <= 1 + 1e-6).all()
    expected = ((result.raw["hpsv2"] - 0.15) / 0.2 * 10).clamp(0, 10)
    assert torch.allclose(result.scores["hpsv2"], expected)
    assert_spread(result.scores["hpsv2"])


def test_hpsv2_missing_file_error(comfy, preference_files):
    with pytest.raises(PromptInvalid) as info:
        comfy.run({
            "load": {"class_type": "EACPS_LoadHPSv2Verifier",
                     "inputs": {"arch": "ViT-H-14", "weights": "HPS_v2.1_compressed.pt", "download": False}},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}},
        })
    text = str(info.value.details)
    assert "HPS_v2.1_compressed.pt" in text and "models/verifiers" in text and "xswu/HPSv2" in text


def test_imagereward(comfy, captured, preference_files):
    v = load_verifier(comfy, captured, "EACPS_LoadImageRewardVerifier",
                      {"model_folder": "tiny_imagereward", "checkpoint": "ImageReward.pt", "download": False})
    assert v.aspects == ("imagereward",) and v.identity == "imagereward:tiny_imagereward:ImageReward.pt"
    result = check_verifier(v, make_images(5), "a red apple")
    expected = ((result.raw["imagereward"] + 2) / 4 * 10).clamp(0, 10)
    assert torch.allclose(result.scores["imagereward"], expected)
    assert_spread(result.scores["imagereward"])
    # The tiny head's reward has ImageReward's mean and std on the calibration pictures (written so by
    # tests/verifier_models.py), so the z-score the verifier reports is 0 +- 1 there.
    calibration = v.score(make_images(**CALIBRATION_IMAGES), CALIBRATION_PROMPT).raw["imagereward"]
    mean, std = float(calibration.mean()), float(calibration.std())
    assert abs(mean) < 1e-4 and abs(std - 1) < 1e-4, (mean, std)
    other_prompt = v.score(make_images(5), "make it table")
    assert not torch.allclose(other_prompt.raw["imagereward"], result.raw["imagereward"])  # text is used


def test_imagereward_missing_checkpoint_error(comfy, preference_files):
    with pytest.raises(PromptInvalid) as info:
        comfy.run({
            "load": {"class_type": "EACPS_LoadImageRewardVerifier",
                     "inputs": {"model_folder": "tiny_imagereward", "checkpoint": "nope.pt", "download": False}},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}},
        })
    text = str(info.value.details)
    assert "tiny_imagereward/nope.pt" in text and "models/verifiers" in text and "THUDM/ImageReward" in text
