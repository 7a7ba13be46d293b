"""Real-architecture diffusion models (SD1.5, SDXL, FLUX) with seeded random weights, built
through ComfyUI's own model classes and configs. Right cost, meaningless pictures: for GPU
benchmarks and real-size checks. ``blocks`` shrinks FLUX's depth for a quick CPU smoke run."""

from __future__ import annotations

import hashlib

import comfy.model_management
import comfy.model_patcher
import comfy.supported_models
import torch

# The unet dicts of comfy/model_detection.py (unet_config_from_diffusers_unet), as ComfyUI
# detects them from real checkpoints.
SD15_UNET = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
    "legacy": False, "adm_in_channels": None, "in_channels": 4, "model_channels": 320,
    "num_res_blocks": [2, 2, 2, 2], "transformer_depth": [1, 1, 1, 1, 1, 1, 0, 0],
    "channel_mult": [1, 2, 4, 4], "transformer_depth_middle": 1, "use_linear_in_transformer": False,
    "context_dim": 768, "num_heads": 8, "transformer_depth_output": [1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0],
    "use_temporal_attention": False, "use_temporal_resblock": False,
}
SDXL_UNET = {
    "use_checkpoint": False, "image_size": 32, "out_channels": 4, "use_spatial_transformer": True,
    "legacy": False, "num_classes": "sequential", "adm_in_channels": 2816, "in_channels": 4,
    "model_channels": 320, "num_res_blocks": [2, 2, 2], "transformer_depth": [0, 0, 2, 2, 10, 10],
    "channel_mult": [1, 2, 4], "transformer_depth_middle": 10, "use_linear_in_transformer": True,
    "context_dim": 2048, "num_head_channels": 64, "transformer_depth_output": [0, 0, 0, 2, 2, 2, 10, 10, 10],
    "use_temporal_attention": False, "use_temporal_resblock": False,
}
# FLUX.1-dev as detect_unet_config builds it from the real checkpoint's keys.
FLUX_DIT = {
    "image_model": "flux", "guidance_embed": True, "axes_dim": [16, 56, 56], "num_heads": 24,
    "mlp_ratio": 4.0, "theta": 10000, "out_channels": 16, "qkv_bias": True, "in_channels": 16,
    "hidden_size": 3072, "context_in_dim": 4096, "patch_size": 2, "vec_in_dim": 768,
    "depth": 19, "depth_single_blocks": 38,
}
ARCHS = {
    "sd15": (comfy.supported_models.SD15, SD15_UNET),
    "sdxl": (comfy.supported_models.SDXL, SDXL_UNET),
    "flux": (comfy.supported_models.Flux, FLUX_DIT),
}
LATENT_CHANNELS = {"sd15": 4, "sdxl": 4, "flux": 16}


def arch_model(arch: str, dtype: torch.dtype = torch.float16, seed: int = 0, blocks: int | None = None):
    config_cls, unet = ARCHS[arch]
    unet = dict(unet)
    if blocks is not None and arch == "flux":
        unet["depth"], unet["depth_single_blocks"] = blocks, blocks
    config = config_cls(unet)
    config.set_inference_dtype(dtype, None)
    device = comfy.model_management.get_torch_device()
    model = config.get_model({}, "", device=device)
    gen = torch.Generator(device=device).manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.diffusion_model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=gen, device=device, dtype=torch.float32).to(p.dtype) * 0.02)
    model.diffusion_model.eval()
    return comfy.model_patcher.ModelPatcher(
        model, load_device=device, offload_device=comfy.model_management.unet_offload_device()
    )


def arch_conditioning(arch: str, text: str) -> list:
    """Conditioning of the shapes each architecture's text encoders produce."""
    seed = int.from_bytes(hashlib.sha256(f"{arch}:{text}".encode()).digest()[:8], "little")
    gen = torch.Generator().manual_seed(seed)
    if arch == "sd15":
        return [[torch.randn(1, 77, 768, generator=gen), {}]]
    if arch == "sdxl":
        return [[torch.randn(1, 77, 2048, generator=gen), {"pooled_output": torch.randn(1, 1280, generator=gen)}]]
    if arch == "flux":
        return [[torch.randn(1, 256, 4096, generator=gen), {"pooled_output": torch.randn(1, 768, generator=gen), "guidance": 3.5}]]
    raise ValueError(f"unknown arch {arch!r}: one of {sorted(ARCHS)}")
