"""Test-only ComfyUI node pack: offers the tiny model, VAE and conditioning to workflows, and a
capture node that lets tests read any node output. Installed into the host only by the tests,
demo and benchmarks (tests/harness); never registered by the product pack."""

from __future__ import annotations

from . import tiny

CAPTURED: dict[str, object] = {}
_MODELS: dict[tuple[str, int], object] = {}


def _cached(kind: str, seed: int, build):
    key = (kind, seed)
    if key not in _MODELS:
        _MODELS[key] = build(seed)
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
        return (_cached("vae", weights_seed, tiny.tiny_vae),)


class TinyConditioning:
    CATEGORY = "EACPS testing"
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"default": "", "multiline": True})}}

    def encode(self, text):
        return (tiny.text_conditioning(text),)


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
    "EACPSTest_TinyConditioning": TinyConditioning,
    "EACPSTest_Capture": Capture,
}
