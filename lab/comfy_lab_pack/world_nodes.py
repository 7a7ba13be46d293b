"""Nodes that offer the lab world's trained model, VAE and text conditioning to workflows."""

from __future__ import annotations

import comfy.model_management
import torch

from . import world_model

CATEGORY = "EACPS lab"
_LOADED: dict[str, object] = {}


def _cached(name: str, load):
    # One copy per process: ComfyUI's model management moves the ModelPatchers in and out of VRAM.
    if name not in _LOADED:
        _LOADED[name] = load()
    return _LOADED[name]


class LoadModel:
    """The lab world's trained SD1.5-family denoiser (lab/weights/world_unet.safetensors)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "load"
    DESCRIPTION = "The lab world's trained denoiser: an SD1.5-family UNet for 64x64 images (8x8 latents)."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def load(self):
        return (_cached("model", world_model.load_model),)


class LoadVAE:
    """The lab world's TAESD-architecture VAE (lab/weights/world_vae.safetensors)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("VAE",)
    FUNCTION = "load"
    DESCRIPTION = "The lab world's VAE (TAESD architecture): 64x64 RGB <-> 4x8x8 latents."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {}}

    def load(self):
        return (_cached("vae", world_model.load_vae),)


class TextEncode:
    """CONDITIONING [[context [1, 8, 64] float32, {}]] from a lab-world prompt (empty = negative)."""

    CATEGORY = CATEGORY
    RETURN_TYPES = ("CONDITIONING",)
    FUNCTION = "encode"
    DESCRIPTION = ("Conditioning from a lab-world prompt such as 'a red circle left of a blue square' "
                   "(colours red/green/blue/yellow, shapes circle/square/triangle, relations left of/"
                   "right of/above/below). Leave empty for the negative.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"text": ("STRING", {"multiline": True, "default": "a red circle left of a blue square",
                                                 "tooltip": "a lab-world prompt; empty for the negative"})}}

    def encode(self, text):
        patcher = _cached("text", world_model.load_text_encoder)
        comfy.model_management.load_model_gpu(patcher)
        with torch.no_grad():
            context = patcher.model.encode([text])
        return ([[context.to(comfy.model_management.intermediate_device()), {}]],)


NODE_CLASS_MAPPINGS = {
    "EACPSLab_LoadModel": LoadModel,
    "EACPSLab_LoadVAE": LoadVAE,
    "EACPSLab_TextEncode": TextEncode,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "EACPSLab_LoadModel": "Lab world: load model",
    "EACPSLab_LoadVAE": "Lab world: load VAE",
    "EACPSLab_TextEncode": "Lab world: text encode",
}
