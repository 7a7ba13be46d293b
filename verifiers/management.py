"""The one module of verifiers/ that talks to ComfyUI: model folders, model management, devices.

- Folders: ``folder_paths`` key ``verifiers`` -> ``models/verifiers`` with explicit extensions.
  Single-file weights (open_clip state dicts, aesthetic heads, HPS, ImageReward) are listed by
  :func:`weight_files`; HF-format model folders (a sub-folder holding ``config.json``: PickScore,
  DINOv2, a VLM judge, the ImageReward BLIP config/tokenizer) by :func:`hf_folders`.
- Model management: every verifier torch module sits in a ``ModelPatcher``; :meth:`Managed.load`
  calls ``comfy.model_management.load_models_gpu`` before each scoring pass, so the diffusion
  model and the verifier take turns in VRAM (the pattern of ``comfy/clip_vision.py``).
  :func:`load_patchers` does the same for any protocol verifier's ``patchers`` (other packs' too)
  before each scoring call.
- Cache: loaded models are kept per resolved file + options (:func:`cached`), not per node.

Every other verifiers/*.py module imports ComfyUI only through this one; they stay importable
(and their math testable) without a running ComfyUI as long as they do not call in here.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .protocol import VerifierError

FOLDER_KEY = "verifiers"
EXTENSIONS = {".safetensors", ".pt", ".pth", ".bin"}
HF_MARKER = "config.json"

_CACHE: dict[tuple, Any] = {}
_CACHE_LOCK = threading.Lock()


def _folder_paths():
    import folder_paths

    return folder_paths


def register_folders() -> None:
    """Register ``models/verifiers`` under the key ``verifiers`` (idempotent; keeps user paths
    added through extra_model_paths.yaml)."""
    fp = _folder_paths()
    default = os.path.join(fp.models_dir, FOLDER_KEY)
    if FOLDER_KEY in fp.folder_names_and_paths:
        paths, exts = fp.folder_names_and_paths[FOLDER_KEY]
        if default not in paths:
            paths.insert(0, default)
        fp.folder_names_and_paths[FOLDER_KEY] = (paths, set(exts) | EXTENSIONS)
    else:
        fp.folder_names_and_paths[FOLDER_KEY] = ([default], set(EXTENSIONS))


def folders() -> list[str]:
    register_folders()
    return list(_folder_paths().get_folder_paths(FOLDER_KEY))


def default_folder() -> str:
    return folders()[0]


def _hf_roots() -> list[tuple[str, str]]:
    """(root, relative folder) of every HF-format model folder under the verifier folders."""
    found = []
    for root in folders():
        if not os.path.isdir(root):
            continue
        for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            rel = os.path.relpath(dirpath, root)
            if rel != "." and HF_MARKER in filenames:
                found.append((root, rel.replace(os.sep, "/")))
                dirnames[:] = []  # a model folder's own sub-folders are not models
            elif rel.count(os.sep) >= 3:
                dirnames[:] = []
    return found


def hf_folders() -> list[str]:
    """HF-format model folders (relative to models/verifiers), e.g. ``PickScore_v1``."""
    return sorted({rel for _, rel in _hf_roots()})


def weight_files() -> list[str]:
    """Single weight files under models/verifiers, leaving out the insides of HF folders."""
    register_folders()
    inside = [rel + "/" for _, rel in _hf_roots()]
    files = _folder_paths().get_filename_list(FOLDER_KEY)
    return [f for f in files if not any(f.replace(os.sep, "/").startswith(p) for p in inside)]


def missing_message(what: str, name: str, source: str, folder: bool = False) -> str:
    thing = "folder" if folder else "file"
    return (
        f"{what}: {thing} '{name}' not found. Put it in {os.path.join(default_folder(), '')} "
        f"(ComfyUI's models/{FOLDER_KEY}/ folder{', as a sub-folder' if folder else ''}). "
        f"Where to get it: {source}"
    )


def resolve_file(name: str, what: str, source: str) -> str:
    if not name or not name.strip():
        raise VerifierError(f"{what}: no weights file chosen. {missing_message(what, '<none>', source)}")
    path = _folder_paths().get_full_path(FOLDER_KEY, name) if name else None
    if path is None or not os.path.isfile(path):
        raise VerifierError(missing_message(what, name, source))
    return os.path.realpath(path)


def resolve_folder(name: str, what: str, source: str) -> str:
    for root in folders():
        path = os.path.join(root, name)
        if name and os.path.isfile(os.path.join(path, HF_MARKER)):
            return os.path.realpath(path)
    raise VerifierError(missing_message(what, name or "<none>", source, folder=True))


# The files a transformers tokenizer is built from: fast (tokenizer.json), BPE (vocab.json + merges.txt),
# WordPiece (vocab.txt), sentencepiece (*.model).
TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "vocab.txt", "tokenizer.model", "spiece.model")


def require_tokenizer_files(folder: str, what: str, source: str) -> None:
    """Refuse a model folder without tokenizer files before AutoTokenizer reads it: transformers 5
    then builds an empty-vocabulary tokenizer without a word (every prompt all [UNK], one score for all)."""
    if not any(os.path.isfile(os.path.join(folder, f)) for f in TOKENIZER_FILES):
        raise VerifierError(f"{what}: no tokenizer files in {folder} (one of {', '.join(TOKENIZER_FILES)}). "
                            f"Expected {source}")


# ---------------------------------------------------------------- Cancel

POLL_S = 0.1  # how often a waiting verifier looks for Cancel: well inside the ~1 s users expect


def _model_management():
    """ComfyUI's model_management, or None where a verifier runs outside ComfyUI (nothing can
    press Cancel there)."""
    try:
        import comfy.model_management as mm
    except ModuleNotFoundError:
        return None
    return mm


def interrupted() -> bool:
    """Whether the user pressed Cancel (POST /interrupt); does not clear the flag."""
    mm = _model_management()
    return mm is not None and mm.processing_interrupted()


def throw_if_interrupted() -> None:
    """Raise ComfyUI's InterruptProcessingException if Cancel was pressed, so the prompt ends as
    interrupted (not as an error)."""
    mm = _model_management()
    if mm is not None:
        mm.throw_exception_if_processing_interrupted()


def interruptible(module: torch.nn.Module):
    """Context manager: while it is open, every layer of ``module`` that sits in a ModuleList (the
    blocks of a transformer) checks Cancel before it runs, so one long forward pass (a VLM judge's
    batch) stops within a layer."""
    import contextlib

    @contextlib.contextmanager
    def hooks():
        modules = module.modules() if isinstance(module, torch.nn.Module) else ()
        handles = [
            child.register_forward_pre_hook(lambda *_: throw_if_interrupted())
            for m in modules if isinstance(m, torch.nn.ModuleList) for child in m
        ]
        try:
            yield module
        finally:
            for h in handles:
                h.remove()

    return hooks()


# ---------------------------------------------------------------- devices, dtypes, model patchers


def load_device() -> torch.device:
    import comfy.model_management as mm

    return mm.get_torch_device()


def offload_device() -> torch.device:
    import comfy.model_management as mm

    return mm.text_encoder_offload_device()


def compute_dtype(device: torch.device | None = None, prefer: torch.dtype | None = None) -> torch.dtype:
    """float32 on the CPU; on an accelerator the text-encoder dtype ComfyUI picks (fp16/bf16),
    or ``prefer`` when given. fp8 is never used for scoring."""
    import comfy.model_management as mm

    device = device or load_device()
    if mm.is_device_cpu(device):
        return torch.float32
    if prefer is not None:
        return prefer
    dtype = mm.text_encoder_dtype(device)
    if dtype not in (torch.float16, torch.bfloat16, torch.float32):
        dtype = torch.float16
    return dtype


class Holder(torch.nn.Module):
    """What the ModelPatcher holds. ModelPatcher sets attributes such as ``device`` on its model,
    which transformers models expose as read-only properties; a plain container takes them."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner


@dataclass
class Managed:
    """A verifier torch module under ComfyUI model management."""

    module: torch.nn.Module
    patcher: Any
    device: torch.device
    dtype: torch.dtype

    def load(self) -> torch.nn.Module:
        """Make ComfyUI load the module onto its device (evicting others if VRAM is short)."""
        import comfy.model_management as mm

        mm.throw_exception_if_processing_interrupted()
        mm.load_models_gpu([self.patcher])
        return self.module


def load_patchers(patchers: list, identity: str) -> None:
    """Load a verifier's ModelPatchers onto ComfyUI's device before it scores (evicting others if
    VRAM is short). Raises VerifierError if an entry is not a ComfyUI ModelPatcher."""
    import comfy.model_management as mm
    import comfy.model_patcher

    bad = [type(p).__name__ for p in patchers if not isinstance(p, comfy.model_patcher.ModelPatcher)]
    if bad:
        raise VerifierError(
            f"{identity}: 'patchers' must hold ComfyUI ModelPatchers (comfy.model_patcher.ModelPatcher), "
            f"got {bad}. Wrap the verifier's torch module in a ModelPatcher, or leave 'patchers' empty"
        )
    mm.throw_exception_if_processing_interrupted()
    mm.load_models_gpu(patchers)


def manage(module: torch.nn.Module, dtype: torch.dtype | None = None) -> Managed:
    """Wrap ``module`` (built on the CPU) in a ModelPatcher. The weights are cast to the compute
    dtype once; ComfyUI moves them between the offload and load devices."""
    import comfy.model_patcher

    device = load_device()
    dtype = dtype or compute_dtype(device)
    module = module.to(dtype=dtype).eval().requires_grad_(False)
    patcher = comfy.model_patcher.ModelPatcher(Holder(module), load_device=device, offload_device=offload_device())
    return Managed(module=module, patcher=patcher, device=device, dtype=dtype)


def is_loaded(patcher: Any) -> bool:
    """Whether ``patcher`` is among ComfyUI's currently loaded models."""
    import comfy.model_management as mm

    return any(lm.model is patcher for lm in mm.current_loaded_models)


def cached(key: tuple, build: Callable[[], Any]) -> Any:
    """One loaded model per key (resolved path, mtime and options), shared by all nodes."""
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = build()
        return _CACHE[key]


def file_key(path: str) -> tuple:
    """What identifies a file's contents cheaply: its real path, size and mtime."""
    st = os.stat(path)
    return (os.path.realpath(path), st.st_size, st.st_mtime_ns)


def folder_key(path: str) -> tuple:
    entries = []
    for name in sorted(os.listdir(path)):
        full = os.path.join(path, name)
        if os.path.isfile(full):
            st = os.stat(full)
            entries.append((name, st.st_size, st.st_mtime_ns))
    return (os.path.realpath(path), tuple(entries))
