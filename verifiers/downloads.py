"""Verifier weights on request: the public weights this pack knows, and fetching them with
huggingface_hub into ComfyUI's models/verifiers folder.

Nothing here runs unless a loader's ``download`` switch is on (off by default) and the chosen file
or folder is missing. Every known entry is named by where it lands under models/verifiers, so a
loader's combo can offer it before it exists:

- single files land in a sub-folder named after the repository (``<repo name>/<file>``), so two
  repositories' ``open_clip_model.safetensors`` never collide;
- model folders (HF format: ``config.json`` + safetensors) land in ``<folder>/``, from one or more
  repositories (PickScore's weights + the CLIP-H processor files; ImageReward's checkpoint + the
  BLIP config/tokenizer).

Downloads resume: huggingface_hub resumes a dropped connection with HTTP range requests (5 retries)
and skips files already downloaded, so a stopped folder download fetches only the rest on the next
try (a single file cut off for good restarts: huggingface_hub >= 1.0 discards partial files).
After a download every file is checked (non-empty; a safetensors
header must parse; JSON must parse); a file that fails is deleted so the next try fetches it anew.
Offline (``HF_HUB_OFFLINE=1``) or failed downloads raise a VerifierError naming the repository
and the folder. Only safetensors weights are fetched for HF folders (never pickled
``pytorch_model.bin``); single ``.pt``/``.pth`` checkpoints are read later with
``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import fnmatch
import json
import os
from dataclasses import dataclass

from . import management
from .protocol import VerifierError

# A processor repository's files, its tokenizer in either layout transformers reads: fast (tokenizer.json) or
# slow (CLIP's BPE: vocab.json + merges.txt; BLIP's BERT WordPiece: vocab.txt).
PROCESSOR_FILES = ("preprocessor_config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                   "vocab.json", "merges.txt", "vocab.txt")
HF_MODEL_FILES = ("*.json", "*.safetensors", "*.txt", "*.jinja")


@dataclass(frozen=True)
class Part:
    """Files of one Hugging Face repository: exact names or fnmatch patterns."""

    repo: str
    files: tuple[str, ...]


@dataclass(frozen=True)
class Known:
    """Public weights the pack can fetch. ``name``: the path under models/verifiers a loader shows
    (a file, or a folder when ``folder``); ``arch``: the open_clip architecture they need, if any."""

    name: str
    parts: tuple[Part, ...]
    folder: bool = False
    arch: str | None = None
    safetensors: bool = True  # a folder must hold .safetensors weights (ImageReward's are a .pt checkpoint)

    @property
    def repos(self) -> str:
        return " + ".join(p.repo for p in self.parts)


def _file(repo: str, filename: str, arch: str | None = None) -> Known:
    return Known(f"{repo.split('/')[-1]}/{filename}", (Part(repo, (filename,)),), arch=arch)


CLIP_H = _file("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "open_clip_model.safetensors", arch="ViT-H-14")
CLIP_L_OPENAI = _file("timm/vit_large_patch14_clip_224.openai", "open_clip_model.safetensors",
                      arch="ViT-L-14-quickgelu")
# The Hub copy (kept by the TRL team) of improved-aesthetic-predictor's sac+logos+ava1-l14-linearMSE.pth.
AESTHETIC_HEAD = _file("trl-lib/ddpo-aesthetic-predictor", "aesthetic-model.pth")
HPS_V21 = _file("xswu/HPSv2", "HPS_v2.1_compressed.pt", arch="ViT-H-14")
HPS_V2 = _file("xswu/HPSv2", "HPS_v2_compressed.pt", arch="ViT-H-14")
PICKSCORE = Known("PickScore_v1", (Part("yuvalkirstain/PickScore_v1", HF_MODEL_FILES),
                                   Part("laion/CLIP-ViT-H-14-laion2B-s32B-b79K", PROCESSOR_FILES)), folder=True)
IMAGEREWARD = Known("ImageReward", (Part("THUDM/ImageReward", ("ImageReward.pt",)),
                                    Part("Salesforce/blip-itm-large-coco", ("config.json", *PROCESSOR_FILES))),
                    folder=True, safetensors=False)
DINOV2 = tuple(Known(f"dinov2-{size}", (Part(f"facebook/dinov2-{size}", HF_MODEL_FILES),), folder=True)
               for size in ("small", "base", "large"))
VLM_JUDGES = tuple(Known(name, (Part(f"Qwen/{name}", HF_MODEL_FILES),), folder=True)
                   for name in ("Qwen2.5-VL-3B-Instruct", "Qwen2.5-VL-7B-Instruct", "Qwen3-VL-4B-Instruct"))

CLIP_FILES = (CLIP_H, CLIP_L_OPENAI)
ALL = (*CLIP_FILES, AESTHETIC_HEAD, HPS_V21, HPS_V2, PICKSCORE, IMAGEREWARD, *DINOV2, *VLM_JUDGES)


def find(name: str, among: tuple[Known, ...] = ALL) -> Known | None:
    """The known entry named ``name`` (as a loader shows it), or None."""
    name = (name or "").replace(os.sep, "/").strip("/")
    return next((k for k in among if k.name == name), None)


def options(found: list[str], among: tuple[Known, ...], default: str) -> list[str]:
    """Combo options: what is on disk, then the known downloadable names not yet there (the
    loader's ``download`` switch fetches them); ``default`` first if it is neither."""
    names = list(found) + [k.name for k in among if k.name not in found]
    return names if names else [default]


def missing_hint(name: str, among: tuple[Known, ...]) -> str:
    """The sentence a 'missing file' message gains when the download switch could fetch it."""
    known = find(name, among)
    if known is None:
        return ""
    return f" Or turn on the loader's 'download' switch to fetch it from the Hugging Face repository {known.repos}."


def check_arch(name: str, arch: str, what: str) -> None:
    """Refuse a known file with the wrong architecture before loading it."""
    known = find(name)
    if known is not None and known.arch is not None and known.arch != arch:
        raise VerifierError(f"{what}: '{name}' is open_clip architecture {known.arch}, not {arch}; choose {known.arch}")


def _offline() -> bool:
    from huggingface_hub import constants  # fetch checked that huggingface_hub imports

    return bool(constants.HF_HUB_OFFLINE)


def check_file(path: str) -> None:
    """Check one downloaded file: non-empty; a safetensors header parses; JSON parses. On failure
    the file is deleted (so the next try fetches it again) and VerifierError says which and why."""
    problem = None
    try:
        if os.path.getsize(path) == 0:
            problem = "it is empty"
        elif path.endswith(".safetensors"):
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                if not list(f.keys()):
                    problem = "its safetensors header lists no tensors"
        elif path.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                json.load(f)
    except Exception as e:  # a truncated or foreign file: say so, never keep it
        problem = f"it does not parse ({type(e).__name__}: {e})"
    if problem:
        os.remove(path)
        raise VerifierError(f"downloaded file {path} is broken: {problem}. It was deleted; run the prompt again to "
                            "download it anew")


def _fetch_part(part: Part, target: str) -> list[str]:
    from huggingface_hub import hf_hub_download, snapshot_download

    if len(part.files) == 1 and not any(c in part.files[0] for c in "*?["):
        return [hf_hub_download(repo_id=part.repo, filename=part.files[0], local_dir=target)]
    snapshot_download(repo_id=part.repo, local_dir=target, allow_patterns=list(part.files))
    return [os.path.join(target, f) for f in sorted(os.listdir(target))
            if os.path.isfile(os.path.join(target, f)) and any(fnmatch.fnmatch(f, p) for p in part.files)]


def fetch(known: Known, what: str) -> str:
    """Download ``known`` into the first models/verifiers folder (resuming partial files), check
    every file, and return the path of the file or folder. Raises VerifierError naming the
    repository and the folder when offline or when the download fails."""
    root = management.default_folder()
    target = os.path.join(root, known.name if known.folder else os.path.dirname(known.name))
    where = f"{target}{os.sep}"
    try:
        import huggingface_hub  # noqa: F401  (comes with transformers)
    except ImportError as e:
        raise VerifierError(f"{what}: downloading needs the huggingface_hub package ({e}); install it, or put the "
                            f"files of the Hugging Face repository {known.repos} into {where} yourself") from e
    if _offline():
        raise VerifierError(
            f"{what}: could not download '{known.name}' from the Hugging Face repository {known.repos} into "
            f"{where}: Hugging Face offline mode is on (HF_HUB_OFFLINE). Unset it and restart ComfyUI, or put the "
            "files there yourself"
        )
    os.makedirs(target, exist_ok=True)
    files: list[str] = []
    for part in known.parts:
        try:
            files += _fetch_part(part, target)
        except Exception as e:  # offline, no such repository, gated, disk full ...: say which and where
            raise VerifierError(
                f"{what}: could not download '{known.name}' from the Hugging Face repository {part.repo} into "
                f"{where}: {type(e).__name__}: {e}. Check the network and run the prompt again (finished files are "
                "kept), or put the files there yourself"
            ) from e
    for path in files:
        check_file(path)
    if known.folder:
        if known.safetensors and not any(f.endswith(".safetensors") for f in files):
            raise VerifierError(
                f"{what}: the Hugging Face repository {known.parts[0].repo} offers no .safetensors weights, and this "
                f"pack loads no pickled weights. Convert them to safetensors yourself into {where}"
            )
        return management.resolve_folder(known.name, what, known.repos)
    return management.resolve_file(known.name, what, known.repos)


def _resolve_local(name: str, what: str, source: str, folder: bool) -> str:
    if folder:
        return management.resolve_folder(name, what, source)
    return management.resolve_file(name, what, source)


def check(name: str, what: str, source: str, download: bool, among: tuple[Known, ...], folder: bool = False) -> None:
    """For a loader's validate_inputs (no network): the file/folder exists, or ``download`` is on
    and it is one of ``among``. Otherwise VerifierError: where to put it, where to get it, and
    whether the download switch could fetch it."""
    try:
        _resolve_local(name, what, source, folder)
    except VerifierError as e:
        if download and find(name, among) is not None:
            return
        if download:
            raise VerifierError(f"{e}. The 'download' switch fetches only: {', '.join(k.name for k in among)}") from e
        raise VerifierError(f"{e}.{missing_hint(name, among)}") from e


def resolve(name: str, what: str, source: str, download: bool, among: tuple[Known, ...], folder: bool = False) -> str:
    """For a loader's execute: the path of the file/folder, fetched first when it is missing,
    ``download`` is on and it is one of ``among`` (see :func:`fetch`). Never touches the network
    otherwise."""
    check(name, what, source, download, among, folder)
    try:
        return _resolve_local(name, what, source, folder)
    except VerifierError:
        return fetch(find(name, among), what)
