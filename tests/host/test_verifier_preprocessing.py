"""The open_clip-based verifiers feed their model the pixels open_clip's own eval transform makes
(size, resize, crop, mean and std from the model's preprocessing config), so their embeddings are
the ones the published scores were computed with."""

from __future__ import annotations

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

