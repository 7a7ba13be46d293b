"""Technical image quality: sharpness and exposure, measured directly, no weights needed.

Aspects and their mapping to [0, 10] (raw values are in the VerifierResult's ``raw``):

- ``sharpness``: raw = log10 of the variance of the 3x3 Laplacian of the luminance (0..1 scale),
  measured after resizing the image so its longer side is ``size`` pixels (0: native size).
  Linear map: raw -5 (a flat image) -> 0, raw -1 (very strong edges or noise) -> 10, clamped.
- ``exposure``: raw = (fraction of pixels whose luminance is not clipped, i.e. inside
  [0.02, 0.98]) * (1 - 2 |mean luminance - 0.5|). Linear map: 0 -> 0, 1 -> 10.

Weakness, by construction: pure noise is "sharp". Use it to keep the loop honest and to penalise
blur and blown-out images, beside a model verifier for content.
"""

from __future__ import annotations

import torch

from .base import Verifier, VerifierResult, linear_to_score

_LAPLACIAN = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
_LUMA = torch.tensor([0.2126, 0.7152, 0.0722], dtype=torch.float64)
CLIP_LOW, CLIP_HIGH = 0.02, 0.98
SHARPNESS_RANGE = (-5.0, -1.0)


class TechnicalQualityVerifier(Verifier):
    kind = "technical"
    aspects = ("sharpness", "exposure")

    def __init__(self, size: int = 512):
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise ValueError(f"size = {size!r}: use 0 (native) or a positive number of pixels")
        self.size = size

    @property
    def identity(self) -> str:
        return f"technical-v1-size{self.size}"

    def _luma(self, images: torch.Tensor) -> torch.Tensor:
        x = images.detach().to("cpu", torch.float64).clamp(0.0, 1.0)
        luma = (x * _LUMA).sum(-1, keepdim=True).permute(0, 3, 1, 2)  # [B, 1, H, W]
        h, w = luma.shape[-2:]
        if self.size and max(h, w) != self.size:
            scale = self.size / max(h, w)
            size = (max(3, round(h * scale)), max(3, round(w * scale)))
            luma = torch.nn.functional.interpolate(luma, size=size, mode="bilinear", antialias=True,
                                                   align_corners=False)
        return luma

    def _score(self, images, prompt, reference):
        luma = self._luma(images)
        lap = torch.nn.functional.conv2d(luma, _LAPLACIAN.view(1, 1, 3, 3))
        sharp_raw = torch.log10(lap.flatten(1).var(dim=1) + 1e-12)
        flat = luma.flatten(1)
        unclipped = ((flat > CLIP_LOW) & (flat < CLIP_HIGH)).double().mean(dim=1)
        balance = 1.0 - 2.0 * (flat.mean(dim=1) - 0.5).abs()
        expo_raw = unclipped * balance
        return VerifierResult(
            scores={
                "sharpness": linear_to_score(sharp_raw, *SHARPNESS_RANGE),
                "exposure": linear_to_score(expo_raw, 0.0, 1.0),
            },
            raw={"sharpness": sharp_raw, "exposure": expo_raw},
        )
