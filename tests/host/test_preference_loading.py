"""Loading the HF-folder preference verifiers through their loader nodes in a real ComfyUI prompt:
the pixels ImageReward's BLIP sees are BLIP's own preprocessing, a folder that cannot be read
fails with the verifier's name, and the model cache tells folders and checkpoints apart."""

from __future__ import annotations

import os
import re
import shutil

import numpy as np
import pytest
import torch
from verifier_checks import load_verifier, make_images
from verifier_models import TINY_CLIP, write_tiny_imagereward

pytestmark = pytest.mark.host

IR = "EACPS_LoadImageRewardVerifier"


def _imagereward(comfy, captured, folder: str, key: str = "verifier"):
    return load_verifier(comfy, captured, IR, {"model_folder": folder, "checkpoint": "ImageReward.pt"}, key=key)


def _error(comfy, class_type: str, inputs: dict) -> str:
    result = comfy.run({"load": {"class_type": class_type, "inputs": inputs},
                        "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}}},
                       expect_success=False)
    assert not result.success
    return result.error()


def test_imagereward_gets_blips_normalised_pixels(comfy, captured, preference_files):
    from transformers import BlipImageProcessor  # Salesforce/blip-itm-large-coco's processor, its defaults

    v = _imagereward(comfy, captured, "tiny_imagereward")
    images = make_images(2, size=(32, 32))  # the tiny checkpoint's resolution: no resize, only the normalisation
    seen = []
    hook = v.model.managed.module.vision_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs["pixel_values"].detach().cpu()), with_kwargs=True)
    try:
        v.score(images, "a red apple")
    finally:
        hook.remove()
    blip = BlipImageProcessor(do_resize=False, do_rescale=False, do_convert_rgb=False)
    expected = blip(images=list(images.numpy().astype(np.float32)), input_data_format="channels_last",
                    return_tensors="pt")["pixel_values"]
    assert len(seen) == 1 and seen[0].shape == expected.shape
    assert torch.allclose(seen[0].float(), expected, atol=1e-5, rtol=0)


@pytest.fixture
def broken_folders(preference_files):
    """ImageReward folders with the checkpoint but an unreadable BLIP config or no tokenizer files,
    and PickScore folders with their weights but without the CLIP-H processor files, or with all
    their files but weights cut in half."""
    src = preference_files / "tiny_imagereward"
    made = {}
    tokenizer = ("tokenizer.json", "tokenizer_config.json")
    for name, keep, config in (("ir_broken_config", tokenizer, b'{"vision_config": '), ("ir_no_tokenizer", (), None)):
        folder = preference_files / name
        folder.mkdir()
        for f in ("ImageReward.pt", "config.json", *keep):
            shutil.copy(src / f, folder / f)
        if config is not None:
            (folder / "config.json").write_bytes(config)
        made[name] = folder
    ps = preference_files / "ps_no_tokenizer"
    ps.mkdir()
    for f in ("config.json", "model.safetensors"):
        shutil.copy(preference_files / "tiny_pickscore" / f, ps / f)
    made["ps_no_tokenizer"] = ps
    ps = preference_files / "ps_cut_weights"
    shutil.copytree(preference_files / "tiny_pickscore", ps)
    weights = ps / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # an interrupted download
    made["ps_cut_weights"] = ps
    yield made
    for folder in made.values():
        shutil.rmtree(folder)


def test_an_unreadable_imagereward_folder_fails_naming_the_verifier(comfy, broken_folders):
    assert sorted(os.listdir(broken_folders["ir_no_tokenizer"])) == ["ImageReward.pt", "config.json"]
    error = _error(comfy, IR, {"model_folder": "ir_broken_config", "checkpoint": "ImageReward.pt"})
    assert "ImageReward verifier: cannot read the BLIP config/tokenizer in" in error, error
    assert "Salesforce/blip-itm-large-coco" in error, error
    # Without tokenizer files transformers would build an empty-vocabulary tokenizer and every prompt
    # would read as [UNK]: refused instead.
    error = _error(comfy, IR, {"model_folder": "ir_no_tokenizer", "checkpoint": "ImageReward.pt"})
    assert "ImageReward verifier: no tokenizer files in" in error and "tokenizer.json" in error, error


def test_a_pickscore_folder_without_its_processor_files_is_refused(comfy, broken_folders):
    assert sorted(os.listdir(broken_folders["ps_no_tokenizer"])) == ["config.json", "model.safetensors"]
    error = _error(comfy, "EACPS_LoadPickScoreVerifier", {"model_folder": "ps_no_tokenizer"})
    assert "PickScore verifier: no tokenizer files in" in error and "laion/CLIP-ViT-H-14" in error, error


def test_a_pickscore_folder_with_cut_weights_fails_naming_the_verifier(comfy, broken_folders):
    error = _error(comfy, "EACPS_LoadPickScoreVerifier", {"model_folder": "ps_cut_weights"})
    # the whole message: the verifier, the folder, why, then where to get a good copy (the README's repos)
    assert re.fullmatch(r"(?s)EACPS_LoadPickScoreVerifier: PickScore verifier: cannot load a CLIPModel from "
                        r"\S+ps_cut_weights: .+\. Expected a transformers CLIP folder .*yuvalkirstain/PickScore_v1.*"
                        r"laion/CLIP-ViT-H-14-laion2B-s32B-b79K in the same folder\s*", error), error


def test_hps_weights_of_another_model_fail_naming_the_verifier(comfy, preference_files):
    # The aesthetic head picked in the HPS loader's weights list: a plain state dict, not open_clip's.
    error = _error(comfy, "EACPS_LoadHPSv2Verifier",
                   {"arch": TINY_CLIP, "weights": "tiny_aesthetic_head.pth", "download": False})
    assert re.fullmatch(r"(?s)EACPS_LoadHPSv2Verifier: HPSv2 verifier: 'tiny_aesthetic_head\.pth' does not fit the "
                        r"chosen architecture: missing keys .+; unexpected keys layers\.0\.bias, .+\. "
                        r"Pick the architecture these weights were trained with\s*", error), error


def test_imagereward_models_are_cached_per_folder_and_checkpoint(comfy, preference_files):
    # The verifiers are built directly: a loader node run twice with the same inputs is ComfyUI's own
    # output cache, which never reaches the pack's model cache.
    from eacps.verifiers.imagereward import ImageRewardVerifier

    def verifier(name, checkpoint="ImageReward.pt"):
        return ImageRewardVerifier(str(preference_files / name), name, checkpoint)

    other = preference_files / "tiny_imagereward_seed1"
    write_tiny_imagereward(other, seed=1)
    shutil.copy(preference_files / "tiny_imagereward" / "ImageReward.pt", other / "seed0.pt")
    try:
        images = make_images(3)
        first = verifier("tiny_imagereward")
        assert verifier("tiny_imagereward").model is first.model  # one loaded model per folder, shared
        raw0 = first.score(images, "a red apple").raw["imagereward"]
        seed1 = verifier(other.name)
        assert seed1.model is not first.model
        raw = seed1.score(images, "a red apple").raw["imagereward"]
        assert not torch.allclose(raw, raw0)
        # another checkpoint of the same folder: its own model (here the seed-0 weights of the first)
        seed0 = verifier(other.name, "seed0.pt")
        assert seed0.model is not seed1.model
        assert torch.allclose(seed0.score(images, "a red apple").raw["imagereward"], raw0, atol=1e-5, rtol=0)
        # the checkpoint replaced in place (another seed's weights): a new model, not the cached one
        write_tiny_imagereward(other, seed=2)
        seed2 = verifier(other.name)
        assert seed2.model is not seed1.model
        assert not torch.allclose(seed2.score(images, "a red apple").raw["imagereward"], raw)
    finally:
        shutil.rmtree(other)
