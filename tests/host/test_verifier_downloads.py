"""Weights on request: every loader with public weights has a 'download' switch, off by default.
Tests run offline (HF_HUB_OFFLINE=1, set by conftest and scripts/test.sh): with the switch on, a
missing known file or folder fails with a message naming the Hugging Face repository and the
folder it would go to, and nothing is written; with it off, nothing is attempted and the message
says the switch could fetch it."""

from __future__ import annotations

import pytest

from harness.inprocess import PromptInvalid

pytestmark = pytest.mark.host

CLIP_H = "CLIP-ViT-H-14-laion2B-s32B-b79K/open_clip_model.safetensors"
CLIP_L = "vit_large_patch14_clip_224.openai/open_clip_model.safetensors"
HEAD = "ddpo-aesthetic-predictor/aesthetic-model.pth"

# (loader, inputs, repository named in the message, where under models/verifiers it would land)
CASES = {
    "clip_score": ("EACPS_LoadClipScoreVerifier", {"arch": "ViT-H-14", "weights": CLIP_H},
                   "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "CLIP-ViT-H-14-laion2B-s32B-b79K"),
    "aesthetic_backbone": ("EACPS_LoadAestheticVerifier",
                           {"clip_arch": "ViT-L-14-quickgelu", "clip_weights": CLIP_L, "head_weights": HEAD},
                           "timm/vit_large_patch14_clip_224.openai", "vit_large_patch14_clip_224.openai"),
    "aesthetic_head": ("EACPS_LoadAestheticVerifier",
                       {"clip_arch": "EACPS-Tiny-ViT", "clip_weights": "tiny_clip.safetensors", "head_weights": HEAD},
                       "trl-lib/ddpo-aesthetic-predictor", "ddpo-aesthetic-predictor"),
    "pickscore": ("EACPS_LoadPickScoreVerifier", {"model_folder": "PickScore_v1"},
                  "yuvalkirstain/PickScore_v1", "PickScore_v1"),
    "hpsv2": ("EACPS_LoadHPSv2Verifier", {"arch": "ViT-H-14", "weights": "HPSv2/HPS_v2.1_compressed.pt"},
              "xswu/HPSv2", "HPSv2"),
    "imagereward": ("EACPS_LoadImageRewardVerifier", {"model_folder": "ImageReward", "checkpoint": "ImageReward.pt"},
                    "THUDM/ImageReward", "ImageReward"),
    "preservation_dinov2": ("EACPS_LoadPreservationVerifier",
                            {"aspect": "identity", "backbone": "dinov2", "dinov2_folder": "dinov2-small",
                             "clip_arch": "ViT-H-14", "clip_weights": CLIP_H, "ssim_weight": 0.5},
                            "facebook/dinov2-small", "dinov2-small"),
    "preservation_open_clip": ("EACPS_LoadPreservationVerifier",
                               {"aspect": "identity", "backbone": "open_clip", "dinov2_folder": "dinov2-small",
                                "clip_arch": "ViT-H-14", "clip_weights": CLIP_H, "ssim_weight": 0.5},
                               "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "CLIP-ViT-H-14-laion2B-s32B-b79K"),
    "vlm_judge": ("EACPS_LoadVLMJudgeVerifier",
                  {"model_folder": "Qwen2.5-VL-3B-Instruct", "aspects": "realism", "max_batch": 4},
                  "Qwen/Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL-3B-Instruct"),
}
# how each loader names its verifier in messages
WHAT = {"EACPS_LoadClipScoreVerifier": "CLIP score verifier", "EACPS_LoadAestheticVerifier": "aesthetic verifier",
        "EACPS_LoadPickScoreVerifier": "PickScore verifier", "EACPS_LoadHPSv2Verifier": "HPSv2 verifier",
        "EACPS_LoadImageRewardVerifier": "ImageReward verifier",
        "EACPS_LoadPreservationVerifier": "preservation verifier", "EACPS_LoadVLMJudgeVerifier": "VLM judge"}


def _prompt(loader: str, inputs: dict, **extra) -> dict:
    return {"load": {"class_type": loader, "inputs": {**inputs, **extra}},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "download"}}}


@pytest.mark.parametrize("case", sorted(CASES))
def test_download_switch_offline_names_repository_and_folder(comfy, preference_files, case):
    loader, inputs, repo, sub = CASES[case]
    target = preference_files / sub
    assert not target.exists()
    result = comfy.run(_prompt(loader, inputs, download=True), expect_success=False)
    assert not result.success
    error = result.error()
    assert f"{WHAT[loader]}: could not download" in error and f"Hugging Face repository {repo}" in error, error
    assert f"into {target}/" in error and "HF_HUB_OFFLINE" in error, error
    assert not target.exists()  # nothing written, not even an empty folder


@pytest.mark.parametrize("case", sorted(CASES))
def test_without_the_switch_nothing_is_fetched_and_the_switch_is_named(comfy, preference_files, case):
    loader, inputs, repo, _sub = CASES[case]
    for extra in ({}, {"download": False}):  # the switch is off by default
        with pytest.raises(PromptInvalid) as info:
            comfy.run(_prompt(loader, inputs, **extra))
        text = str(info.value.details)
        assert "not found" in text and str(preference_files) in text, text
        assert "turn on the loader's 'download' switch" in text and repo in text, text


def test_switch_refuses_names_it_cannot_fetch(comfy, preference_files):
    with pytest.raises(PromptInvalid) as info:
        comfy.run(_prompt("EACPS_LoadClipScoreVerifier", {"arch": "ViT-H-14", "weights": "my_clip.safetensors"},
                          download=True))
    text = str(info.value.details)
    assert "'my_clip.safetensors' not found" in text and f"switch fetches only: {CLIP_H}, {CLIP_L}" in text, text


def test_known_weights_with_the_wrong_architecture_are_refused(comfy, preference_files):
    with pytest.raises(PromptInvalid, match="is open_clip architecture ViT-H-14, not ViT-B-32; choose ViT-H-14"):
        comfy.run(_prompt("EACPS_LoadClipScoreVerifier", {"arch": "ViT-B-32", "weights": CLIP_H}, download=True))


def test_loaders_offer_the_downloadable_names(comfy, preference_files):
    info = {name: comfy.nodes.NODE_CLASS_MAPPINGS[name].INPUT_TYPES() for name in
            ("EACPS_LoadClipScoreVerifier", "EACPS_LoadPickScoreVerifier", "EACPS_LoadVLMJudgeVerifier")}

    def options(loader, key):
        spec = info[loader]["required"][key]
        return spec[1]["options"] if len(spec) > 1 and "options" in spec[1] else spec[0]

    assert {CLIP_H, CLIP_L, "tiny_clip.safetensors"} <= set(options("EACPS_LoadClipScoreVerifier", "weights"))
    assert "PickScore_v1" in options("EACPS_LoadPickScoreVerifier", "model_folder")
    assert "Qwen3-VL-4B-Instruct" in options("EACPS_LoadVLMJudgeVerifier", "model_folder")
    assert info["EACPS_LoadClipScoreVerifier"]["optional"]["download"][1]["default"] is False
