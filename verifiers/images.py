"""Batched image preprocessing on ComfyUI IMAGE tensors ([B, H, W, 3], 0..1).

Pure torch ops on the whole batch (no PIL per image), so image i scored alone and inside a batch
goes through exactly the same arithmetic.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

RESIZE_MODES = ("shortest", "squash")
INTERPOLATIONS = ("bicubic", "bilinear")


def to_pixels(
    images: torch.Tensor,
    size: int | tuple[int, int],
    mean: tuple[float, ...],
    std: tuple[float, ...],
    resize_mode: str = "shortest",
    interpolation: str = "bicubic",
) -> torch.Tensor:
    """IMAGE [B,H,W,3] -> normalised pixels [B,3,h,w] float32.

    resize_mode "shortest": scale the short side to ``size`` (the other side rounded down to whole
    pixels) then centre-crop: CLIP's eval transform (torchvision Resize + CenterCrop, as in
    open_clip.image_transform), up to the resampling filter's arithmetic; "squash": resize to
    exactly ``size``. ``interpolation``: "bicubic" or "bilinear" (antialiased, as PIL resamples).
    Raises ValueError for another resize_mode or interpolation (open_clip's "longest" is not done).
    """
    if resize_mode not in RESIZE_MODES or interpolation not in INTERPOLATIONS:
        raise ValueError(f"resize_mode {resize_mode!r} / interpolation {interpolation!r}: this preprocessing does "
                         f"{' or '.join(RESIZE_MODES)} with {' or '.join(INTERPOLATIONS)}")
    th, tw = (size, size) if isinstance(size, int) else tuple(size)
    x = images[..., :3].movedim(-1, 1).float()
    h, w = x.shape[-2:]
    if (h, w) != (th, tw):
        if resize_mode == "squash":
            new = (th, tw)
        elif th * w >= tw * h:  # the height reaches its target first: it sets the scale
            # whole pixels rounded down, as torchvision's Resize (CLIP's transform) computes them
            new = (th, max(tw, w * th // h))
        else:
            new = (max(th, h * tw // w), tw)
        x = F.interpolate(x, size=new, mode=interpolation, antialias=True, align_corners=False)
        top = (x.shape[-2] - th) // 2
        left = (x.shape[-1] - tw) // 2
        x = x[..., top:top + th, left:left + tw]
    x = x.clamp(0.0, 1.0)
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return (x - m) / s


def gray(images: torch.Tensor) -> torch.Tensor:
    """IMAGE [B,H,W,3] -> luminance [B,1,H,W] (ITU-R BT.601)."""
    w = torch.tensor([0.299, 0.587, 0.114], dtype=torch.float32, device=images.device)
    return (images[..., :3].float() * w).sum(-1).unsqueeze(1)


def ssim(a: torch.Tensor, b: torch.Tensor, max_side: int = 256) -> torch.Tensor:
    """Mean SSIM (Wang et al. 2004; 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03) between each
    image of ``a`` [B,H,W,3] and ``b`` [1 or B,H',W',3] on luminance. ``b`` is resized to ``a``'s size;
    both are downscaled so the longer side is at most ``max_side``. Returns [B] in [-1, 1]."""
    ga, gb = gray(a), gray(b)
    h, w = ga.shape[-2:]
    scale = min(1.0, max_side / max(h, w))
    th, tw = max(11, round(h * scale)), max(11, round(w * scale))
    if (h, w) != (th, tw):
        ga = F.interpolate(ga, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    if gb.shape[-2:] != (th, tw):
        gb = F.interpolate(gb, size=(th, tw), mode="bilinear", antialias=True, align_corners=False)
    gb = gb.expand(ga.shape[0], -1, -1, -1)
    coords = torch.arange(11, dtype=torch.float32, device=ga.device) - 5
    g = torch.exp(-(coords**2) / (2 * 1.5**2))
    g = g / g.sum()
    win = (g[:, None] * g[None, :]).view(1, 1, 11, 11)

    def blur(x):
        return F.conv2d(x, win)

    mu_a, mu_b = blur(ga), blur(gb)
    saa = blur(ga * ga) - mu_a**2
    sbb = blur(gb * gb) - mu_b**2
    sab = blur(ga * gb) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    m = ((2 * mu_a * mu_b + c1) * (2 * sab + c2)) / ((mu_a**2 + mu_b**2 + c1) * (saa + sbb + c2))
    return m.flatten(1).mean(1)
