"""Compute accounting and adaptive stopping, free of ComfyUI.

Cost is counted, not estimated: the runner counts the denoiser calls the host actually made.

- ``calls``: denoiser invocations (one batched forward pass each, whatever its batch size).
- ``nfe``: per-candidate function evaluations, summed over candidates: each call adds the number
  of candidates whose rows it carried. With classifier-free guidance ComfyUI batches the cond and
  uncond rows of a step into one call when memory allows (``cfg_batched``), so a 20-step euler
  candidate costs 20 NFE; when the host splits them into two calls it costs 40. This is the unit
  of budgets and of every equal-compute comparison.
- ``passes``: cond/uncond passes, summed over candidates (2 per step with CFG, 1 at cfg = 1, where
  ComfyUI skips the uncond pass), whether or not they were batched.
- ``steps``: sampler steps, summed over candidates; ``decodes``: VAE decodes (final images and x0
  previews); ``verifier_calls`` / ``verifier_images``: calls of a verifier and the images they scored.
- seconds spent sampling, decoding and scoring.

A "full-sample equivalent" is the NFE of one candidate run through the whole schedule
(``full_nfe``, measured on the first full run of a search).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


@dataclass(frozen=True)
class Ledger:
    """What a search spent (sums over its candidates; see the module docstring for the units)."""

    calls: int = 0
    nfe: float = 0.0
    passes: float = 0.0
    steps: int = 0
    decodes: int = 0
    verifier_calls: int = 0
    verifier_images: int = 0
    sampling_s: float = 0.0
    decoding_s: float = 0.0
    scoring_s: float = 0.0
    cfg_batched: bool | None = None  # True: cond and uncond shared calls; False: one cond per call; None: no call
    full_nfe: float | None = None  # NFE of one complete candidate, as measured

    def __add__(self, other: Ledger) -> Ledger:
        out = {}
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if f.name == "cfg_batched":
                out[f.name] = a if b is None else b if a is None else (a or b)
            elif f.name == "full_nfe":
                out[f.name] = a if a is not None else b
            else:
                out[f.name] = a + b
        return Ledger(**out)

    def with_full_nfe(self, value: float) -> Ledger:
        return self if self.full_nfe is not None else replace(self, full_nfe=float(value))

    @property
    def full_samples(self) -> float | None:
        """The NFE spent, in full-sample equivalents."""
        return None if not self.full_nfe else self.nfe / self.full_nfe

    def to_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["full_samples"] = self.full_samples
        d["seconds"] = {"sampling": self.sampling_s, "decoding": self.decoding_s, "scoring": self.scoring_s}
        for k in ("sampling_s", "decoding_s", "scoring_s"):
            del d[k]
        return d
