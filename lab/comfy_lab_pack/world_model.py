"""The lab world's text-to-image model, built from ComfyUI's own classes.

- Denoiser: an SD1.5-family UNet (``comfy.supported_models.SD15`` with a small unet config),
  eps prediction on SD1.5's discrete schedule, so every stock sampler node runs it.
- VAE: TAESD (``comfy.taesd.taesd``), 64x64x3 pixels <-> 4x8x8 latents, loaded by ``comfy.sd.VAE``.
- Text encoder: word tokens of ``world.VOCAB`` -> learned token + position embeddings -> one
  transformer layer -> CONDITIONING [1, MAX_TOKENS, CONTEXT_DIM].

Weights live in ``lab/weights/`` as safetensors (written by ``lab/train_world.py``).
"""

from __future__ import annotations

from pathlib import Path

import comfy.model_management
import comfy.model_patcher
import comfy.sd
import comfy.supported_models
import comfy.taesd.taesd
import comfy.utils
import torch

from ._lab import WEIGHTS_DIR, world

CONTEXT_DIM = 64
UNET_FILE = "world_unet.safetensors"
VAE_FILE = "world_vae.safetensors"
TEXT_FILE = "world_text_encoder.safetensors"

UNET_CONFIG = {
    "image_size": 8,
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
    "use_linear_in_transformer": True,
    "adm_in_channels": None,
    "use_temporal_attention": False,
    "use_temporal_resblock": False,
    "use_spatial_transformer": True,
    "legacy": False,
    "use_checkpoint": False,
}


class LabSD15(comfy.supported_models.SD15):
    """SD1.5's model family (latent format, eps prediction, discrete scaled-linear schedule) with a
    small UNet for 8x8 latents."""

    unet_config = dict(UNET_CONFIG)
    unet_extra_config = {}


class TextEncoder(torch.nn.Module):
    """Token ids [B, MAX_TOKENS] (int64, into world.VOCAB) -> context [B, MAX_TOKENS, CONTEXT_DIM]
    float32: token + position embeddings, one pre-norm transformer layer, a final LayerNorm."""

    def __init__(self, dim: int = CONTEXT_DIM, heads: int = 4):
        super().__init__()
        self.token = torch.nn.Embedding(len(world.VOCAB), dim)
        self.position = torch.nn.Parameter(torch.zeros(world.MAX_TOKENS, dim))
        self.layer = torch.nn.TransformerEncoderLayer(dim, heads, dim * 2, dropout=0.0, batch_first=True,
                                                      norm_first=True)
        self.norm = torch.nn.LayerNorm(dim)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.norm(self.layer(self.token(tokens) + self.position))

    def encode(self, prompts: list[str]) -> torch.Tensor:
        """Context for prompt strings; "" is the unconditional (CFG negative) prompt."""
        ids = torch.tensor([world.tokenize(p) for p in prompts], dtype=torch.long,
                           device=self.position.device)
        return self(ids)


def init_module(module: torch.nn.Module, seed: int) -> None:
    """Seeded standard PyTorch initialisation. ComfyUI's ``disable_weight_init`` layers skip
    ``reset_parameters``; this calls the torch base classes' own initialisers instead."""
    torch.manual_seed(seed)
    for m in module.modules():
        for base in (torch.nn.Conv2d, torch.nn.Linear, torch.nn.GroupNorm, torch.nn.LayerNorm,
                     torch.nn.Embedding):
            if isinstance(m, base):
                base.reset_parameters(m)
                break


def build_unet_model(seed: int | None = None):
    """The UNet as a ComfyUI ``BaseModel`` (float32, on the CPU); seeded init when ``seed`` is given."""
    config = LabSD15(dict(UNET_CONFIG))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({}, "")
    if seed is not None:
        init_module(model.diffusion_model, seed)
    return model


def build_vae_modules(seed: int) -> tuple[torch.nn.Module, torch.nn.Module]:
    encoder, decoder = comfy.taesd.taesd.Encoder(4), comfy.taesd.taesd.Decoder(4)
    init_module(encoder, seed)
    init_module(decoder, seed + 1)
    return encoder, decoder


def _weights(name: str, folder: Path | None) -> dict[str, torch.Tensor]:
    path = (folder or WEIGHTS_DIR) / name
    if not path.is_file():
        raise FileNotFoundError(f"lab weights missing: {path} (they are committed in lab/weights/; "
                                "re-create them with lab/train_world.py)")
    return {k: v.float() for k, v in comfy.utils.load_torch_file(str(path), safe_load=True).items()}


def load_model(folder: Path | None = None) -> comfy.model_patcher.ModelPatcher:
    """The trained denoiser as a MODEL (a ModelPatcher that ComfyUI's model management moves)."""
    model = build_unet_model()
    missing, unexpected = model.diffusion_model.load_state_dict(_weights(UNET_FILE, folder), strict=False)
    if missing or unexpected:
        raise RuntimeError(f"{UNET_FILE} does not match the lab UNet: missing {missing[:5]}, "
                           f"unexpected {unexpected[:5]}")
    model.diffusion_model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=comfy.model_management.get_torch_device(),
                                            offload_device=comfy.model_management.unet_offload_device())


def load_vae(folder: Path | None = None) -> comfy.sd.VAE:
    """The trained TAESD as a VAE (``comfy.sd.VAE`` detects TAESD from its keys)."""
    return comfy.sd.VAE(sd=_weights(VAE_FILE, folder))


def load_text_encoder(folder: Path | None = None) -> comfy.model_patcher.ModelPatcher:
    """The trained text encoder wrapped in a ModelPatcher (load with ``load_model_gpu``)."""
    encoder = TextEncoder()
    encoder.load_state_dict(_weights(TEXT_FILE, folder))
    encoder.eval()
    return comfy.model_patcher.ModelPatcher(encoder, load_device=comfy.model_management.text_encoder_device(),
                                            offload_device=comfy.model_management.text_encoder_offload_device())
