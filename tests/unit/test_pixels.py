"""verifiers/images.py's batched preprocessing against the libraries' own per-image transforms."""

import numpy as np
import open_clip
import pytest
import torch
from PIL import Image

from eacps.verifiers.images import to_pixels

MEAN, STD = open_clip.OPENAI_DATASET_MEAN, open_clip.OPENAI_DATASET_STD


def gradient(h: int, w: int) -> torch.Tensor:
    """IMAGE [1, h, w, 3]: red grows left to right, green top to bottom, blue constant (8-bit exact)."""
    x = torch.linspace(0, 1, w).view(1, w).expand(h, w)
    y = torch.linspace(0, 1, h).view(h, 1).expand(h, w)
    img = torch.stack([x, y, torch.full((h, w), 0.5)], dim=-1)
    return (img * 255).round().div(255)[None]


@pytest.mark.parametrize("h, w", [(40, 56), (56, 40), (48, 48), (20, 28)])
def test_shortest_side_resize_and_centre_crop_match_open_clips_transform(h, w):
    """CLIP's eval transform (open_clip.image_transform, PIL per image): scale the short side to the
    size, centre-crop. A smooth gradient keeps the resampling differences small; a wrong scale or
    crop moves whole columns or rows."""
    image = gradient(h, w)
    ours = to_pixels(image, 32, MEAN, STD)[0]
    preprocess = open_clip.image_transform(32, is_train=False, mean=MEAN, std=STD, resize_mode="shortest",
                                           interpolation="bicubic")
    theirs = preprocess(Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)))
    assert ours.shape == theirs.shape == (3, 32, 32)
    # normalised units (1/255 of the pixel range is about 0.015): measured 0.006-0.008 here, from
    # PIL's and torch's bicubic arithmetic; a resize one pixel off, or a crop moved, is far above
    assert (ours - theirs).abs().max().item() < 0.02


def test_squash_and_bilinear_match_open_clips_transform():
    """resize_mode 'squash' (resize to the size, no crop; SigLIP-style configs) with bilinear
    resampling, against open_clip's own transform with the same settings."""
    image = gradient(40, 56)
    ours = to_pixels(image, 32, MEAN, STD, resize_mode="squash", interpolation="bilinear")[0]
    preprocess = open_clip.image_transform(32, is_train=False, mean=MEAN, std=STD, resize_mode="squash",
                                           interpolation="bilinear")
    theirs = preprocess(Image.fromarray((image[0].numpy() * 255).round().astype(np.uint8)))
    assert (ours - theirs).abs().max().item() < 0.02
    bicubic = to_pixels(image, 32, MEAN, STD, resize_mode="squash", interpolation="bicubic")[0]
    assert not torch.equal(bicubic, ours)  # the interpolation asked for is the one used


@pytest.mark.parametrize("setting", [{"resize_mode": "longest"}, {"interpolation": "lanczos"}])
def test_a_preprocessing_it_does_not_do_is_refused_not_replaced(setting):
    with pytest.raises(ValueError, match="this preprocessing does shortest or squash with bicubic or bilinear"):
        to_pixels(gradient(8, 8), 4, MEAN, STD, **setting)


def test_ssim_of_large_pictures_is_taken_with_the_long_side_at_256_pixels():
    """A 512x384 pair scores as the same pair resized to 256x192 (luminance is linear in RGB, so
    resizing before or after it is the same) and not as the pair at full size."""
    import torch.nn.functional as F

    from eacps.verifiers.images import ssim

    gen = torch.Generator().manual_seed(4)
    a = F.interpolate(torch.rand(1, 3, 24, 32, generator=gen), size=(384, 512), mode="bilinear").movedim(1, -1)
    b = (a + 0.2 * torch.rand(1, 384, 512, 3, generator=gen)).clamp(0, 1)

    def half(x):
        return F.interpolate(x.movedim(-1, 1), size=(192, 256), mode="bilinear", antialias=True,
                             align_corners=False).movedim(1, -1)

    large, small = ssim(a, b), ssim(half(a), half(b))
    assert torch.allclose(large, small, atol=1e-5), (large, small)
    assert not torch.allclose(ssim(a, b, max_side=512), small, atol=1e-3)  # the size matters here
