"""A test-only node pack written as another author would write one: it offers a verifier to EACPS
without importing EACPS (inside ComfyUI it could not), by providing the duck-typed verifier
protocol (docs/verifiers.md, 'Verifier protocol') and declaring the output type "EACPS_VERIFIER".

Its verifier runs a tiny torch module under ComfyUI model management (a ModelPatcher listed in
``patchers``) and scores ``brightness`` = 10 x the mean pixel value, or, with ``needs_reference``,
``closeness`` = 10 x (1 - |mean(image) - mean(reference)|). ``broken`` makes the object or its
results malformed on purpose, so tests can see EACPS refuse them in a real prompt.

Installed into the test host beside EACPS by tests/harness/paths.py; never part of the product.
V1 node style on purpose (the other half of the ecosystem; EACPS itself is V3).
"""

from __future__ import annotations

from dataclasses import dataclass

import comfy.model_management
import comfy.model_patcher
import torch

# What the last scoring call saw, for the tests: was our patcher loaded when score() ran?
SEEN: dict[str, object] = {}

BROKEN = ("none", "no_aspects", "score_out_of_range", "wrong_batch", "bad_patcher")


@dataclass
class Result:
    """A result object of our own: EACPS reads only ``scores`` and ``raw``."""

    scores: dict
    raw: dict


class MeanPixel(torch.nn.Module):
    """[B, H, W, 3] -> [B] mean pixel value, through a 1x1 convolution with weights 1/3."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 1, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.fill_(1.0 / 3.0)

    def forward(self, images):
        return self.conv(images.movedim(-1, 1)).mean(dim=(1, 2, 3))


class BrightnessVerifier:
    def __init__(self, needs_reference: bool, broken: str):
        self.kind = "thirdparty_brightness"
        self.aspects = ("closeness",) if needs_reference else ("brightness",)
        self.identity = f"thirdparty_brightness:{self.aspects[0]}"
        self.uses_reference = needs_reference
        self.requires_reference = needs_reference
        self.module = MeanPixel()
        self.patcher = comfy.model_patcher.ModelPatcher(
            self.module, load_device=comfy.model_management.get_torch_device(),
            offload_device=comfy.model_management.unet_offload_device())
        self.patchers = [self.patcher]
        self.broken = broken
        if broken == "no_aspects":
            del self.aspects
        if broken == "bad_patcher":
            self.patchers = [self.module]

    def score(self, images, prompt, reference):
        SEEN["loaded"] = any(m.model is self.patcher for m in comfy.model_management.current_loaded_models)
        SEEN["reference"] = reference
        with torch.no_grad():
            means = self.module(images.to(self.patcher.load_device)).to("cpu", torch.float64)
            if self.uses_reference:
                ref = self.module(reference.to(self.patcher.load_device)).to("cpu", torch.float64)
                value = 1.0 - (means - ref).abs()
            else:
                value = means
        scores = (value * 10.0).clamp(0.0, 10.0)
        if self.broken == "score_out_of_range":
            scores = scores + 11.0
        if self.broken == "wrong_batch":
            scores = scores[:1]
        return Result(scores={self.aspects[0]: scores}, raw={self.aspects[0]: value})


class LoadBrightnessVerifier:
    CATEGORY = "third party testing"
    RETURN_TYPES = ("EACPS_VERIFIER",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"needs_reference": ("BOOLEAN", {"default": False}), "broken": (list(BROKEN),)}}

    def load(self, needs_reference, broken):
        return (BrightnessVerifier(needs_reference, broken),)


NODE_CLASS_MAPPINGS = {"ThirdParty_LoadBrightnessVerifier": LoadBrightnessVerifier}
NODE_DISPLAY_NAME_MAPPINGS = {"ThirdParty_LoadBrightnessVerifier": "Load Brightness Verifier (third party)"}
