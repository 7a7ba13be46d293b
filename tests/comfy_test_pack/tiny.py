"""Tiny models built through ComfyUI's own classes, with seeded random weights.

A ~1 M-parameter SD1.5-architecture UNet, a TAESD VAE and text conditioning of the right shape.
Pictures are meaningless; the code paths (sampling, noise, VAE decode, model management) are
ComfyUI's real ones. Used by the tests, the demo and the CPU benchmarks.
"""

from __future__ import annotations

import hashlib

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
import comfy.taesd.taesd
import torch

CONTEXT_DIM = 32
TINY_UNET = {
    "image_size": 32,
    "in_channels": 4,
    "out_channels": 4,
    "model_channels": 32,
    "num_res_blocks": [1, 1],
    "channel_mult": [1, 2],
    "transformer_depth": [1, 1],
    "transformer_depth_output": [1, 1, 1, 1],
    "transformer_depth_middle": 1,
    "context_dim": CONTEXT_DIM,
    "num_heads": 2,
    "num_head_channels": -1,
    "use_linear_in_transformer": False,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "use_spatial_transformer": True,
    "legacy": False,
    "use_checkpoint": False,
}


class TinySD15(comfy.supported_models.SD15):
    unet_config = dict(TINY_UNET)
    unet_extra_config = {}


def _seeded_init(module: torch.nn.Module, seed: int, scale: float = 0.02) -> None:
    # comfy.ops.disable_weight_init makes reset_parameters a no-op: without this the weights
    # would be uninitialised memory and runs would not be reproducible.
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(module.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=gen, dtype=torch.float32) * scale)


def tiny_model(seed: int = 0) -> comfy.model_patcher.ModelPatcher:
    config = TinySD15(dict(TINY_UNET))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "")
    _seeded_init(model.diffusion_model, seed)
    model.diffusion_model.eval()
    load = comfy.model_management.get_torch_device()
    offload = comfy.model_management.unet_offload_device()
    return comfy.model_patcher.ModelPatcher(model, load_device=load, offload_device=offload)


def tiny_vae_state_dict(seed: int = 0, channels: int = 4) -> dict[str, torch.Tensor]:
    """TAESD (4 latent channels: SD1.5/SDXL) or TAEF1-shaped (16: FLUX); comfy.sd.VAE reads the
    channel count from taesd_decoder.1.weight."""
    encoder = comfy.taesd.taesd.Encoder(channels)
    decoder = comfy.taesd.taesd.Decoder(channels)
    _seeded_init(encoder, seed, scale=0.1)
    _seeded_init(decoder, seed + 1, scale=0.1)
    sd = {f"taesd_encoder.{k}": v for k, v in encoder.state_dict().items()}
    sd.update({f"taesd_decoder.{k}": v for k, v in decoder.state_dict().items()})
    sd["vae_scale"] = torch.tensor(0.18215)
    sd["vae_shift"] = torch.tensor(0.0)
    return sd


def tiny_vae(seed: int = 0, channels: int = 4) -> comfy.sd.VAE:
    return comfy.sd.VAE(sd=tiny_vae_state_dict(seed, channels))


HOT = 1e36  # times the decoder's first-conv channel 0: any positive value there overflows float32 later


def decoder_channel0(vae: comfy.sd.VAE, samples: torch.Tensor) -> torch.Tensor:
    """Per latent of ``samples`` [B, 4, h, w]: the largest pre-bias value of the tiny VAE decoder's
    first conv, output channel 0 (what :func:`overflow_vae` compares with its threshold)."""
    dec = vae.first_stage_model.taesd_decoder
    x = dec[0]((samples.float() - vae.first_stage_model.vae_shift) * vae.first_stage_model.vae_scale)
    w = dec[1].weight[:1].float()
    return torch.nn.functional.conv2d(x, w, padding=1).flatten(1).amax(1)


def overflow_vae(seed: int, threshold: float) -> comfy.sd.VAE:
    """The tiny VAE, except that the decoder's first conv channel 0 becomes HOT * (value - threshold):
    a latent whose channel-0 value exceeds ``threshold`` anywhere overflows float32 a few layers later
    (inf - inf = NaN pixels), the way an fp16 VAE overflows past 65504 on some latents only. Latents
    below it decode to finite images. Real TAESD code and real IEEE arithmetic, no patched decode."""
    sd = tiny_vae_state_dict(seed)
    sd["taesd_decoder.1.weight"][0] *= HOT
    sd["taesd_decoder.1.bias"][0] = -HOT * threshold
    return comfy.sd.VAE(sd=sd)


def text_conditioning(text: str, tokens: int = 77) -> list:
    """CONDITIONING for ``text``: a fixed random embedding derived from the text's hash."""
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    gen = torch.Generator().manual_seed(seed)
    return [[torch.randn(1, tokens, CONTEXT_DIM, generator=gen), {}]]
