"""The lab world's judges as EACPS verifiers: ``EACPSLab_LoadJudge`` (which = V or E) outputs an
``EACPS_VERIFIER``.

This pack is imported by ComfyUI under its own folder path, so its verifiers cannot subclass the
EACPS pack's ``Verifier``; they follow its duck-typed verifier protocol instead: ``kind``,
``identity``, ``aspects``, ``uses_reference``, ``requires_reference``, ``patchers`` (ComfyUI
ModelPatchers loaded before scoring) and ``score(images, prompt, reference) -> result`` with
``result.scores`` / ``result.raw`` mapping each aspect to a tensor [B]. The pack validates results.

- V (aspect ``judge_v``): the search verifier, a dual-encoder match probability; score =
  10 * sigmoid(logit), raw = the logit. Continuous, so the search can rank by it.
- E (aspect ``judge_e``): the held-out evaluator; score = 10 if the detected objects satisfy the
  prompt (``world.satisfies``), else 0; raw = 1 / 0. Meant for evaluation, not for searching.

Both understand only prompts of the lab world's grammar and raise a clear error for any other text.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import comfy.model_management
import comfy.model_patcher
import torch

from ._lab import _load

judges = _load("judges")

ASPECTS = {"V": "judge_v", "E": "judge_e"}
_LOADED: dict[tuple, object] = {}


@dataclass(frozen=True)
class JudgeResult:
    """scores / raw: aspect name -> float64 tensor [B] on the CPU (scores in [0, 10])."""

    scores: dict[str, torch.Tensor]
    raw: dict[str, torch.Tensor]


class _Holder(torch.nn.Module):
    """What the ModelPatcher holds (ModelPatcher sets attributes on its model)."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner


class LabJudge:
    """Judge V or E of the lab world under ComfyUI model management (one ModelPatcher)."""

    uses_reference = False
    requires_reference = False

    def __init__(self, which: str, path=None):
        if which not in ASPECTS:
            raise ValueError(f"which = {which!r}: the lab judges are {sorted(ASPECTS)}")
        path = path or (judges.E_FILE if which == "E" else judges.V_FILE)
        self.which = which
        self.net = judges.load(which, path)
        digest = hashlib.sha256(open(path, "rb").read()).hexdigest()[:12]
        self.kind = f"lab_judge_{which.lower()}"
        self.identity = f"{self.kind}:{digest}"
        self.aspects = (ASPECTS[which],)
        self.patchers = [comfy.model_patcher.ModelPatcher(
            _Holder(self.net), load_device=comfy.model_management.get_torch_device(),
            offload_device=comfy.model_management.unet_offload_device())]

    def score(self, images: torch.Tensor, prompt: str, reference: torch.Tensor | None = None) -> JudgeResult:
        """images: IMAGE [B, H, W, 3] float 0..1; prompt: a lab-world prompt (ValueError otherwise)."""
        try:
            judges.world.parse_prompt(prompt)
        except ValueError as e:
            raise ValueError(f"{self.identity}: the lab judges only read the lab world's prompts "
                             f"('a COLOUR SHAPE RELATION a COLOUR SHAPE'): {e}") from e
        comfy.model_management.load_models_gpu(self.patchers)
        aspect = self.aspects[0]
        if self.which == "V":
            raw = judges.v_logits(self.net, images, prompt)
            return JudgeResult({aspect: 10.0 * torch.sigmoid(raw)}, {aspect: raw})
        raw = judges.e_pass(self.net, images, prompt)
        return JudgeResult({aspect: 10.0 * raw}, {aspect: raw})


def load_judge(which: str) -> LabJudge:
    """One loaded judge per (which, weights file contents)."""
    path = judges.E_FILE if which == "E" else judges.V_FILE
    if not path.is_file():
        raise judges.JudgeError(f"judge {which}: {path} is missing; train it with `.venv/bin/python "
                                "lab/train_judges.py`")
    st = path.stat()
    key = (which, str(path), st.st_size, st.st_mtime_ns)
    if key not in _LOADED:
        _LOADED[key] = LabJudge(which, path)
    return _LOADED[key]


class LoadJudge:
    CATEGORY = "EACPS lab"
    RETURN_TYPES = ("EACPS_VERIFIER",)
    RETURN_NAMES = ("verifier",)
    FUNCTION = "load"
    DESCRIPTION = ("A judge of the lab world as an EACPS verifier. V (aspect judge_v): the search verifier, a "
                   "continuous image-text match score. E (aspect judge_e): the held-out evaluator, 10 when the "
                   "detected objects satisfy the prompt, else 0; use it to evaluate, not to search.")

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"which": (["V", "E"], {"default": "V",
                                                     "tooltip": "V: search verifier; E: held-out evaluator."})}}

    def load(self, which):
        return (load_judge(which),)


NODE_CLASS_MAPPINGS = {"EACPSLab_LoadJudge": LoadJudge}
NODE_DISPLAY_NAME_MAPPINGS = {"EACPSLab_LoadJudge": "EACPS Lab Load Judge"}
