"""CLIP score, aesthetic and preservation verifiers: tiny real-format models loaded through their
loader nodes inside a real ComfyUI prompt, then scored."""

from __future__ import annotations

import pytest
import torch
from verifier_checks import check_verifier, load_verifier, make_images
from verifier_models import TINY_CLIP, write_aesthetic_head

from eacps.verifiers.base import VerifierError
from harness.inprocess import PromptInvalid

pytestmark = pytest.mark.host


def test_clip_score(comfy, captured, verifier_files):
    v = load_verifier(comfy, captured, "EACPS_LoadClipScoreVerifier",
                      {"arch": TINY_CLIP, "weights": "tiny_clip.safetensors"})
    assert v.kind == "clip_score" and v.aspects == ("clip_score",)
    assert v.identity == f"clip_score:{TINY_CLIP}:tiny_clip.safetensors"
    result = check_verifier(v, make_images(5), "a red apple on a table")
    assert torch.allclose(result.scores["clip_score"], 4 * result.raw["clip_score"])


def test_clip_score_model_is_cached_per_file(comfy, captured, verifier_files):
    a = load_verifier(comfy, captured, "EACPS_LoadClipScoreVerifier",
                      {"arch": TINY_CLIP, "weights": "tiny_clip.safetensors"})
    b = load_verifier(comfy, captured, "EACPS_LoadPreservationVerifier",
                      {"aspect": "identity", "backbone": "open_clip", "dinov2_folder": "tiny_dinov2",
                       "clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors", "ssim_weight": 0.5})
    assert a.model is b.model


def test_aesthetic(comfy, captured, verifier_files):
    from verifier_models import AESTHETIC_CENTRE, AESTHETIC_STD, CALIBRATION_IMAGES

    v = load_verifier(comfy, captured, "EACPS_LoadAestheticVerifier",
                      {"clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors",
                       "head_weights": "tiny_aesthetic_head.pth"})
    assert v.aspects == ("aesthetic",)
    result = check_verifier(v, make_images(5), "ignored")
    assert torch.allclose(result.scores["aesthetic"], result.raw["aesthetic"].clamp(0, 10))
    scores = result.scores["aesthetic"]  # the head is calibrated so both clamps and the middle are exercised
    assert (scores == 0).any() and (scores == 10).any() and ((scores > 0) & (scores < 10)).any(), scores
    # The head was written to give mean AESTHETIC_CENTRE, std AESTHETIC_STD on the calibration pictures'
    # normalised CLIP embeddings: the verifier feeds the head those embeddings, preprocessed as CLIP's.
    calibration = v.score(make_images(**CALIBRATION_IMAGES), "ignored").raw["aesthetic"]
    mean, std = float(calibration.mean()), float(calibration.std())
    assert abs(mean - AESTHETIC_CENTRE) < 1e-3 and abs(std - AESTHETIC_STD) < 1e-3, (mean, std)


def test_aesthetic_head_dimension_mismatch_is_explained(comfy, captured, verifier_files):
    write_aesthetic_head(verifier_files / "head_768.pth", input_size=768)
    result = comfy.run({
        "load": {"class_type": "EACPS_LoadAestheticVerifier",
                 "inputs": {"clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors",
                            "head_weights": "head_768.pth"}},
        "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "bad"}},
    }, expect_success=False)
    assert not result.success
    assert "expects 768-d CLIP embeddings" in result.error() and "32-d" in result.error()


def test_preservation_dinov2(comfy, captured, verifier_files):
    v = load_verifier(comfy, captured, "EACPS_LoadPreservationVerifier",
                      {"aspect": "preservation", "backbone": "dinov2", "dinov2_folder": "tiny_dinov2",
                       "clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors", "ssim_weight": 0.5})
    assert v.requires_reference and v.aspects == ("preservation",)
    images = make_images(5)
    reference = images[2:3].clone()
    result = check_verifier(v, images, "p", reference)
    assert result.scores["preservation"][2].item() == pytest.approx(10.0, abs=1e-4)
    others = torch.cat([result.scores["preservation"][:2], result.scores["preservation"][3:]])
    assert (others < 9.9).all()


@pytest.mark.parametrize("backbone", ["open_clip", "ssim_only"])
def test_preservation_other_backbones(comfy, captured, verifier_files, backbone):
    v = load_verifier(comfy, captured, "EACPS_LoadPreservationVerifier",
                      {"aspect": "identity", "backbone": backbone, "dinov2_folder": "tiny_dinov2",
                       "clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors", "ssim_weight": 0.3})
    assert v.aspects == ("identity",)
    images = make_images(5, size=(48, 40))
    reference = images[0:1].clone()
    result = check_verifier(v, images, "p", reference, expect_patchers=backbone != "ssim_only")
    assert result.scores["identity"][0].item() == pytest.approx(10.0, abs=1e-4)
    assert (result.scores["identity"][1:] < 9.9).all()


def test_preservation_without_reference_fails(comfy, captured, verifier_files):
    v = load_verifier(comfy, captured, "EACPS_LoadPreservationVerifier",
                      {"aspect": "identity", "backbone": "ssim_only", "dinov2_folder": "tiny_dinov2",
                       "clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors", "ssim_weight": 1.0})
    with pytest.raises(VerifierError, match="reference"):
        v.score(make_images(2), "p")


def test_missing_weights_error_names_file_folder_and_source(comfy, verifier_files):
    with pytest.raises(PromptInvalid) as info:
        comfy.run({
            "load": {"class_type": "EACPS_LoadClipScoreVerifier",
                     "inputs": {"arch": TINY_CLIP, "weights": "not_there.safetensors"}},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}},
        })
    text = str(info.value.details)
    assert "not_there.safetensors" in text
    assert str(comfy.base_dir / "models" / "verifiers") in text
    assert "open_clip" in text and "laion/CLIP-ViT-H-14" in text


def test_pickled_model_folders_are_refused(comfy, verifier_files):
    """A transformers folder whose weights are only a pickle (pytorch_model.bin) is not loaded."""
    from verifier_models import write_dinov2

    write_dinov2(verifier_files / "pickled_dinov2", safetensors=False)
    assert not list((verifier_files / "pickled_dinov2").glob("*.safetensors"))
    with pytest.raises(AssertionError, match="safetensors"):
        comfy.run({
            "load": {"class_type": "EACPS_LoadPreservationVerifier",
                     "inputs": {"aspect": "identity", "backbone": "dinov2", "dinov2_folder": "pickled_dinov2",
                                "clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors",
                                "ssim_weight": 0.5}},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "pickled"}},
        })


@pytest.mark.parametrize("change, words", [
    ({"backbone": "clip"}, "backbone = 'clip' is not one of: dinov2, open_clip, ssim_only"),
    ({"aspect": "likeness"}, "aspect = 'likeness' is not one of: preservation, identity"),
    ({"clip_weights": "not_there.safetensors"}, "not_there.safetensors"),  # backbone open_clip: its file is checked
])
def test_the_preservation_loader_refuses_what_it_cannot_build_before_anything_runs(comfy, verifier_files, change,
                                                                                    words):
    inputs = {"aspect": "identity", "backbone": "open_clip", "dinov2_folder": "tiny_dinov2", "clip_arch": TINY_CLIP,
              "clip_weights": "tiny_clip.safetensors", "ssim_weight": 0.5, **change}
    with pytest.raises(PromptInvalid) as info:
        comfy.run({
            "load": {"class_type": "EACPS_LoadPreservationVerifier", "inputs": inputs},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "refused"}},
        })
    assert words in str(info.value.details), info.value.details


def test_the_preservation_loader_offers_its_backbones_and_aspects_in_the_editor(comfy):
    """The choices the frontend shows (ComfyUI's /object_info form of the schema)."""
    info = comfy.nodes.NODE_CLASS_MAPPINGS["EACPS_LoadPreservationVerifier"].GET_NODE_INFO_V1()
    required = info["input"]["required"]
    assert required["backbone"][0] == required["aspect"][0] == "COMBO"
    assert required["backbone"][1]["options"] == ["dinov2", "open_clip", "ssim_only"]
    assert required["aspect"][1]["options"] == ["preservation", "identity"]
