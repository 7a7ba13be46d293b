"""Reading weight files safely: safetensors, or ``torch.load(weights_only=True)`` for plain state
dicts. No pickle code execution, no trust_remote_code anywhere in this pack."""

from __future__ import annotations

import os

import torch

from .base import VerifierError


def load_state_dict(path: str, what: str) -> dict[str, torch.Tensor]:
    """The tensors of ``path``. A checkpoint that wraps them (``{"state_dict": ...}``, ``"model"``)
    is unwrapped; a ``module.`` prefix (DataParallel) is stripped."""
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".safetensors":
            from safetensors.torch import load_file

            sd = load_file(path, device="cpu")
        else:
            sd = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise VerifierError(
            f"{what}: cannot read '{os.path.basename(path)}' ({type(e).__name__}: {e}). Only safetensors "
            "files and plain PyTorch state dicts (loadable with weights_only=True) are accepted"
        ) from e
    for wrapper in ("state_dict", "model", "module"):
        if isinstance(sd, dict) and wrapper in sd and isinstance(sd[wrapper], dict):
            sd = sd[wrapper]
    if not isinstance(sd, dict) or not all(isinstance(v, torch.Tensor) for v in sd.values()):
        raise VerifierError(f"{what}: '{os.path.basename(path)}' is not a state dict of tensors")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    return sd


def load_strict(module: torch.nn.Module, sd: dict[str, torch.Tensor], what: str, name: str) -> None:
    """load_state_dict(strict=True) with an error that says which keys/shapes disagree."""
    own = module.state_dict()
    missing = sorted(set(own) - set(sd))
    unexpected = sorted(set(sd) - set(own))
    shapes = [f"{k}: file {tuple(sd[k].shape)} vs model {tuple(own[k].shape)}"
              for k in sorted(set(own) & set(sd)) if sd[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def head(items):
            return ", ".join(items[:5]) + (f" (+{len(items) - 5} more)" if len(items) > 5 else "")

        parts = []
        if missing:
            parts.append(f"missing keys {head(missing)}")
        if unexpected:
            parts.append(f"unexpected keys {head(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches {head(shapes)}")
        raise VerifierError(
            f"{what}: '{name}' does not fit the chosen architecture: {'; '.join(parts)}. "
            "Pick the architecture these weights were trained with"
        )
    module.load_state_dict(sd, strict=True)
