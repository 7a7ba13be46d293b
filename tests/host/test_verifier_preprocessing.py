"""The open_clip-based verifiers feed their model the pixels open_clip's own eval transform makes
(size, resize, crop, mean and std from the model's preprocessing config), so their embeddings are
the ones the published scores were computed with."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from verifier_checks import load_verifier
from verifier_models import TINY_CLIP

pytestmark = pytest.mark.host


def test_clip_image_embeddings_equal_open_clips_own_pipeline(comfy, captured, verifier_files):
    import open_clip
    from safetensors.torch import load_file

    v = load_verifier(comfy, captured, "EACPS_LoadClipScoreVerifier",
                      {"arch": TINY_CLIP, "weights": "tiny_clip.safetensors"})
    gen = torch.Generator().manual_seed(5)
    # non-square, smooth pictures of another size than the model's: resize and crop both matter
    small = torch.rand(3, 3, 6, 9, generator=gen)
    images = torch.nn.functional.interpolate(small, size=(46, 70), mode="bilinear").movedim(1, -1)
    images = (images * 255).round() / 255  # exactly representable as the 8-bit PIL images below
    ours = v.model.image_features(images).cpu()

    model, _, preprocess = open_clip.create_model_and_transforms(TINY_CLIP, pretrained=None)
    model.load_state_dict(load_file(str(verifier_files / "tiny_clip.safetensors")))
    model.eval()
    pil = [Image.fromarray((im.numpy() * 255).round().astype(np.uint8)) for im in images]
    with torch.no_grad():
        theirs = torch.nn.functional.normalize(model.encode_image(torch.stack([preprocess(p) for p in pil])), dim=-1)
    assert ours.shape == theirs.shape
    cos = (ours * theirs).sum(-1)
    assert (cos > 0.999).all(), cos  # the same embedding up to the resampling filters' arithmetic
    cross = ours @ theirs.T  # the tiny model's embeddings of different pictures are alike (cos 0.96-0.99):
    own = cross.diagonal().clone()  # each must still be closest to its own picture's
    assert (own > cross.fill_diagonal_(-1).max(dim=1).values).all(), (own, cross)



def test_dinov2_is_fed_the_size_mean_and_std_of_its_image_processor(comfy, verifier_files, tmp_path):
    """DINOv2's crop size, mean and std come from the folder's preprocessor_config.json, as
    transformers' own image processor reads them; without that file, the ones facebook/dinov2-*
    publish (224 x 224 crop, ImageNet mean and std: transformers' IMAGENET_DEFAULT_MEAN/STD)."""
    import shutil

    from transformers import AutoImageProcessor
    from transformers.image_utils import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

    from eacps.verifiers.preservation import DinoBackbone

    folder = tmp_path / "dinov2_wide"
    shutil.copytree(verifier_files / "tiny_dinov2", folder)
    config = json.loads((folder / "preprocessor_config.json").read_text())
    config.update(crop_size={"height": 32, "width": 48}, image_mean=[0.4, 0.45, 0.5], image_std=[0.2, 0.25, 0.3])
    (folder / "preprocessor_config.json").write_text(json.dumps(config))
    processor = AutoImageProcessor.from_pretrained(str(folder))
    dino = DinoBackbone(str(folder))
    assert dino.size == (processor.crop_size["height"], processor.crop_size["width"]) == (32, 48)
    assert dino.mean == pytest.approx(tuple(processor.image_mean))
    assert dino.std == pytest.approx(tuple(processor.image_std))

    (folder / "preprocessor_config.json").unlink()
    dino = DinoBackbone(str(folder))
    assert dino.size == (224, 224)
    assert dino.mean == pytest.approx(tuple(IMAGENET_DEFAULT_MEAN)) and dino.std == pytest.approx(
        tuple(IMAGENET_DEFAULT_STD))


def test_pickscore_is_fed_the_size_mean_and_std_of_its_image_processor(comfy, preference_files, tmp_path):
    """PickScore's crop size, mean and std come from the folder's preprocessor_config.json, as
    transformers' CLIPImageProcessor reads them; without it, the model's own input size and
    OpenAI CLIP's mean and std (transformers' OPENAI_CLIP_MEAN/STD), as PickScore was trained."""
    import shutil

    from transformers import CLIPImageProcessor
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    from eacps.verifiers.pickscore import PickScoreModel

    folder = tmp_path / "pickscore_wide"
    shutil.copytree(preference_files / "tiny_pickscore", folder)
    (folder / "processor_config.json").unlink(missing_ok=True)  # transformers 5's layout; the Hub's has:
    # the file laion/CLIP-ViT-H-14-laion2B-s32B-b79K ships (and the download switch fetches), other values
    (folder / "preprocessor_config.json").write_text(json.dumps({
        "image_processor_type": "CLIPImageProcessor", "crop_size": {"height": 32, "width": 32},
        "size": {"shortest_edge": 32}, "do_center_crop": True, "do_normalize": True, "do_resize": True,
        "image_mean": [0.4, 0.45, 0.5], "image_std": [0.2, 0.25, 0.3], "resample": 3}))
    processor = CLIPImageProcessor.from_pretrained(str(folder))
    model = PickScoreModel(str(folder))
    assert model.size == (processor.crop_size["height"], processor.crop_size["width"])
    assert model.mean == pytest.approx(tuple(processor.image_mean)) and model.std == pytest.approx(
        tuple(processor.image_std))

    (folder / "preprocessor_config.json").unlink()
    model = PickScoreModel(str(folder))
    assert model.size == (32, 32)  # the tiny model's vision_config.image_size
    assert model.mean == pytest.approx(tuple(OPENAI_CLIP_MEAN)) and model.std == pytest.approx(tuple(OPENAI_CLIP_STD))
