"""Test-only ComfyUI node pack: offers the tiny model, VAE and conditioning to workflows, and a
capture node that lets tests read any node output. Installed into the host only by the tests,
demo and benchmarks (tests/harness); never registered by the product pack."""

from __future__ import annotations

import torch

from . import archs, tiny

CAPTURED: dict[str, object] = {}
_MODELS: dict[tuple[str, int], object] = {}
_ARCH_MODELS: dict[str, object] = {}


def _cached(kind: str, seed: int, build, *args):
    key = (kind, seed, *args)
    if key not in _MODELS:
        _MODELS[key] = build(seed, *args)
    return _MODELS[key]


class TinyModel:
    CATEGORY = "EACPS testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights_seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def load(self, weights_seed):
        return (_cached("model", weights_seed, tiny.tiny_model),)


class TinyVAE:
    CATEGORY = "EACPS testing"
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights_seed": ("INT", {"default": 0, "min": 0, "max": 2**31})}}

    def load(self, weights_seed):
        return (_cached("vae", weights_seed, tiny.tiny_vae, 4),)


class TinyVAEChannels(TinyVAE):
    """The tiny TAESD-shaped VAE for any latent channel count: 4 (SD1.5/SDXL), 16 (FLUX)."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights_seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "channels": ("INT", {"default": 4, "min": 1, "max": 64})}}

    def load(self, weights_seed, channels):
        return (_cached("vae", weights_seed, tiny.tiny_vae, channels),)


class OverflowVAE(TinyVAE):
    """The tiny VAE with a decoder that overflows to NaN pixels on latents above ``threshold``
    (see tiny.overflow_vae): the fault an fp16 VAE shows on some candidates."""

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"weights_seed": ("INT", {"default": 0, "min": 0, "max": 2**31}),
                             "threshold": ("FLOAT", {"default": 0.0, "min": -1e9, "max": 1e9, "step": 0.0001})}}

    def load(self, weights_seed, threshold):
        return (tiny.overflow_vae(weights_seed, threshold),)


class TinyConditioning:
    CATEGORY = "EACPS testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "", "multiline": True})}}

    def encode(self, text):
        return (tiny.text_conditioning(text),)


class ArchModel:
    """A real-architecture model (SD1.5, SDXL, FLUX) with random weights, for GPU benchmarks."""

    CATEGORY = "EACPS testing"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "arch": (sorted(archs.ARCHS),),
            "dtype": (["float16", "bfloat16", "float32"],),
            "flux_blocks": ("INT", {"default": 0, "min": 0, "max": 38, "tooltip": "0: the real depth"}),
        }}

    def load(self, arch, dtype, flux_blocks):
        key = f"{arch}:{dtype}:{flux_blocks}"
        if key not in _ARCH_MODELS:
            _ARCH_MODELS.clear()  # one real-size model at a time
            _ARCH_MODELS[key] = archs.arch_model(arch, getattr(torch, dtype), blocks=flux_blocks or None)
        return (_ARCH_MODELS[key],)


class ArchConditioning:
    CATEGORY = "EACPS testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"arch": (sorted(archs.ARCHS),), "text": ("STRING", {"default": ""})}}

    def encode(self, arch, text):
        return (archs.arch_conditioning(arch, text),)


class Capture:
    """Stores its input under ``key`` in CAPTURED so a test can compare raw tensors."""

    CATEGORY = "EACPS testing"
    RETURN_TYPES = ()
    FUNCTION = "capture"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"value": ("*",), "key": ("STRING", {"default": "out"})}}

    @classmethod
    def VALIDATE_INPUTS(cls, input_types):
        return True

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # always run, so every prompt captures afresh

    def capture(self, value, key):
        CAPTURED[key] = value
        return {}


NODE_CLASS_MAPPINGS = {
    "EACPSTest_TinyModel": TinyModel,
    "EACPSTest_TinyVAE": TinyVAE,
    "EACPSTest_TinyVAEChannels": TinyVAEChannels,
    "EACPSTest_TinyConditioning": TinyConditioning,
    "EACPSTest_OverflowVAE": OverflowVAE,
    "EACPSTest_Capture": Capture,
    "EACPSTest_ArchModel": ArchModel,
    "EACPSTest_ArchConditioning": ArchConditioning,
}
