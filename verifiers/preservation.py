"""Preservation / identity: how much a candidate keeps of the reference image (edit input or
identity source). 10 = identical.

raw = (1 - w) * cos(embed(candidate), embed(reference)) + w * SSIM(candidate, reference), where the
embedding is DINOv2's CLS feature (transformers folder) or an open_clip image embedding, SSIM is
computed on luminance with the reference resized to the candidate, and w is the node's
``ssim_weight`` (w = 1: SSIM only, no model). raw lies in [-1, 1];
score = 10 * clamp(raw, 0, 1).
"""

from __future__ import annotations

import json
import os

import torch

from . import management
from .base import Verifier, VerifierError, VerifierResult
from .images import ssim, to_pixels
from .openclip import backbone

DINO_SOURCE = ("a transformers DINOv2 folder (config.json, model.safetensors, preprocessor_config.json), "
               "e.g. facebook/dinov2-base or facebook/dinov2-small")
ASPECTS = ("preservation", "identity")  # the score's name: the EACPS edit preset weighs "identity"
BACKBONES = ("dinov2", "open_clip", "ssim_only")  # the semantic part's model; ssim_only has none
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class DinoBackbone:
    def __init__(self, folder: str):
        from transformers import Dinov2Model

        try:
            model = Dinov2Model.from_pretrained(folder, local_files_only=True, trust_remote_code=False,
                                               use_safetensors=True)
        except Exception as e:
            raise VerifierError(f"preservation verifier: cannot load DINOv2 from {folder}: {e}. "
                                f"Expected {DINO_SOURCE}") from e
        cfg = {}
        pre = os.path.join(folder, "preprocessor_config.json")
        if os.path.isfile(pre):
            with open(pre, encoding="utf-8") as f:
                cfg = json.load(f)
        crop = cfg.get("crop_size", {"height": 224, "width": 224})
        self.size = (crop["height"], crop["width"]) if isinstance(crop, dict) else (int(crop), int(crop))
        self.mean = tuple(cfg.get("image_mean", IMAGENET_MEAN))
        self.std = tuple(cfg.get("image_std", IMAGENET_STD))
        self.managed = management.manage(model)

    @property
    def patcher(self):
        return self.managed.patcher

    @torch.inference_mode()
    def image_features(self, images: torch.Tensor) -> torch.Tensor:
        model = self.managed.load()
        pixels = to_pixels(images.to(self.managed.device), self.size, self.mean, self.std)
        out = model(pixel_values=pixels.to(self.managed.dtype))
        return torch.nn.functional.normalize(out.pooler_output.float(), dim=-1)


def dino_backbone(folder: str) -> DinoBackbone:
    return management.cached(("dinov2", management.folder_key(folder)), lambda: DinoBackbone(folder))


class PreservationVerifier(Verifier):
    kind = "preservation"
    uses_reference = True
    requires_reference = True

    def __init__(self, aspect: str, backbone_kind: str, ssim_weight: float, *, dino_folder: str | None = None,
                 dino_name: str = "", clip_arch: str = "", clip_path: str | None = None, clip_name: str = ""):
        if aspect not in ASPECTS:
            raise VerifierError(f"preservation verifier: aspect must be one of {', '.join(ASPECTS)}, not '{aspect}'")
        if not 0.0 <= ssim_weight <= 1.0:
            raise VerifierError(f"preservation verifier: ssim_weight must be in [0, 1], got {ssim_weight}")
        self.aspects = (aspect,)
        self.ssim_weight = float(ssim_weight)
        self.model = None
        if backbone_kind == "dinov2":
            self.model = dino_backbone(dino_folder)
            source = f"dinov2:{dino_name}"
        elif backbone_kind == "open_clip":
            self.model = backbone(clip_arch, clip_path, "preservation verifier")
            source = f"open_clip:{clip_arch}:{clip_name}"
        elif backbone_kind == "ssim_only":
            self.ssim_weight = 1.0
            source = "ssim_only"
        else:
            raise VerifierError(f"preservation verifier: backbone must be one of {', '.join(BACKBONES)}, "
                                f"not '{backbone_kind}'")
        if self.model is None and self.ssim_weight < 1.0:
            raise VerifierError("preservation verifier: without a backbone only SSIM can be used")
        self._identity = f"preservation:{aspect}:{source}:ssim_weight={self.ssim_weight:g}"
        self.managed_models = (self.model,) if self.model is not None else ()

    def _score(self, images, prompt, reference) -> VerifierResult:
        if reference is None:
            raise VerifierError(f"{self.identity}: needs a reference image")
        w = self.ssim_weight
        raw = torch.zeros(images.shape[0], dtype=torch.float64)
        if w > 0:
            raw += w * ssim(images.float(), reference.float()).double().cpu()
        if w < 1:
            ref = self.model.image_features(reference.to(images))
            feats = self.model.image_features(images)
            cos = (feats @ ref.T).squeeze(1).double().cpu()
            raw += (1 - w) * cos
        aspect = self.aspects[0]
        return VerifierResult(scores={aspect: raw.clamp(0.0, 1.0) * 10.0}, raw={aspect: raw})
