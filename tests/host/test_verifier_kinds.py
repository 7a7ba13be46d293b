"""Each loader's verifier has its family name (``kind``): it names scores as ``<kind>.<aspect>``
in a potential's weights when two verifiers share an aspect (docs/verifiers.md), so users' weights
text depends on it."""

from __future__ import annotations

import pytest
from verifier_checks import load_verifier
from verifier_models import TINY_CLIP

pytestmark = pytest.mark.host

CLIP = {"arch": TINY_CLIP, "weights": "tiny_clip.safetensors"}
KINDS = [
    ("EACPS_LoadClipScoreVerifier", CLIP, "clip_score"),
    ("EACPS_LoadAestheticVerifier", {"clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors",
                                     "head_weights": "tiny_aesthetic_head.pth"}, "aesthetic"),
    ("EACPS_LoadPickScoreVerifier", {"model_folder": "tiny_pickscore"}, "pickscore"),
    ("EACPS_LoadHPSv2Verifier", {**CLIP, "weights": "tiny_hps.pt", "download": False}, "hpsv2"),
    ("EACPS_LoadImageRewardVerifier", {"model_folder": "tiny_imagereward", "checkpoint": "ImageReward.pt",
                                       "download": False}, "imagereward"),
    ("EACPS_LoadPreservationVerifier", {"aspect": "identity", "backbone": "ssim_only", "dinov2_folder": "tiny_dinov2",
                                        "clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors",
                                        "ssim_weight": 1.0}, "preservation"),
    ("EACPS_LoadVLMJudgeVerifier", {"model_folder": "tiny_qwen2vl", "aspects": "realism", "max_batch": 2},
     "vlm_judge"),
    ("EACPS_LoadAPIJudgeVerifier", {"base_url": "http://127.0.0.1:9/v1", "model": "m", "api_key_env": "",
                                    "aspects": "realism", "timeout_s": 1.0, "max_retries": 0, "backoff_s": 0.0,
                                    "concurrency": 1}, "api_judge"),
    ("EACPS_LoadTechnicalVerifier", {"size": 64}, "technical"),
]


@pytest.mark.parametrize("class_type, inputs, kind", KINDS, ids=[k for _, _, k in KINDS])
def test_each_loaders_verifier_has_its_kind(comfy, captured, preference_files, judge_files, class_type, inputs,
                                           kind):
    assert load_verifier(comfy, captured, class_type, inputs).kind == kind
