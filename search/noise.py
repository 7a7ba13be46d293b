"""Noise recipes: exactly reproducible starting noises.

A plain seed gives, bit for bit, the noise a stock KSampler draws for that seed on a batch-1
latent: ``comfy.sample.prepare_noise`` is ``torch.manual_seed(seed)`` and one ``torch.randn`` of
the latent's shape on the CPU. Here the same draw comes from a private ``torch.Generator`` (no
global RNG side effect), for any latent shape and channel count.

Children of a parent noise x (all a pure function of parent recipe, child seed, mode, strength):

- ``seed_offset``: the noise of the child seed itself (the paper's s + j). Adjacent seeds give
  independent noise, so this is equivalent to fresh draws, not a neighbourhood.
- ``slerp``: spherical interpolation from the parent's direction towards the child seed's noise by
  ``strength`` (0 = the parent, 1 = the child seed's direction), then scaled to the parent's norm.
  As the child seed's noise is almost orthogonal to x, the cosine to the parent is close to
  cos(strength * pi/2) (strength 0.1 -> 0.988) and falls monotonically with strength.
- ``sphere``: ``|x| (lam u + sqrt(1 - lam^2) w)`` with u = x/|x| and w the child seed's noise made
  orthogonal to u and normalised; lam = cos(strength * pi/2), so the cosine to the parent is
  exactly lam and the norm is exactly |x|.

Both neighbourhood modes keep the parent's norm, so a child stays a typical N(0, I) draw. The
arithmetic is done in float64 and cast to the latent's dtype at the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

MODES = ("seed_offset", "slerp", "sphere")
SEED_MAX = 2**64 - 1  # what torch.Generator.manual_seed and ComfyUI's seed widget accept


@dataclass(frozen=True)
class NoiseRecipe:
    """How to rebuild one starting noise. mode "seed" is a plain seed; the others are children."""

    seed: int
    mode: str = "seed"
    strength: float = 0.0
    parent: NoiseRecipe | None = None

    def __post_init__(self):
        if not (0 <= self.seed <= SEED_MAX):
            raise ValueError(f"seed {self.seed} outside [0, 2^64 - 1]")
        if self.mode == "seed":
            if self.parent is not None:
                raise ValueError("a plain seed recipe has no parent")
            return
        if self.mode not in MODES:
            raise ValueError(f"unknown noise mode '{self.mode}'; use one of {', '.join(MODES)}")
        if self.parent is None:
            raise ValueError(f"a '{self.mode}' child needs a parent recipe")
        if self.mode != "seed_offset" and not (0.0 < self.strength <= 1.0):
            raise ValueError(f"strength {self.strength} outside (0, 1] for mode '{self.mode}'")

    @property
    def cosine(self) -> float | None:
        """For sphere children, the exact cosine to the parent (lam)."""
        return math.cos(self.strength * math.pi / 2) if self.mode == "sphere" else None

    def to_dict(self) -> dict:
        out: dict = {"mode": self.mode, "seed": self.seed}
        if self.mode in ("slerp", "sphere"):
            out["strength"] = self.strength
        if self.mode == "sphere":
            out["lam"] = self.cosine
        if self.parent is not None:
            out["parent"] = self.parent.to_dict()
        return out

    @staticmethod
    def from_dict(d: dict) -> NoiseRecipe:
        parent = NoiseRecipe.from_dict(d["parent"]) if d.get("parent") is not None else None
        return NoiseRecipe(seed=int(d["seed"]), mode=d["mode"], strength=float(d.get("strength", 0.0)), parent=parent)


def seed_noise(seed: int, shape, dtype=torch.float32) -> torch.Tensor:
    """torch.manual_seed(seed); torch.randn(shape) on the CPU, without touching the global RNG."""
    gen = torch.Generator(device="cpu")
    gen.manual_seed(seed)
    return torch.randn(tuple(shape), dtype=dtype, generator=gen, device="cpu")


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm()


def slerp(strength: float, parent: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """Direction slerp from parent towards other by strength, scaled to the parent's norm (float64)."""
    p, o = parent.double().flatten(), other.double().flatten()
    u, v = _unit(p), _unit(o)
    omega = torch.arccos((u @ v).clamp(-1.0, 1.0))
    so = torch.sin(omega)
    if so.abs() < 1e-12:  # parallel: nothing to interpolate towards
        d = u
    else:
        d = (torch.sin((1.0 - strength) * omega) * u + torch.sin(strength * omega) * v) / so
    return (_unit(d) * p.norm()).reshape(parent.shape)


def sphere(strength: float, parent: torch.Tensor, other: torch.Tensor) -> torch.Tensor:
    """|x| (lam u + sqrt(1 - lam^2) w), w = other made orthogonal to u; lam = cos(strength pi/2)."""
    p, o = parent.double().flatten(), other.double().flatten()
    u = _unit(p)
    w = _unit(o - (o @ u) * u)
    lam = math.cos(strength * math.pi / 2)
    d = lam * u + math.sqrt(max(0.0, 1.0 - lam * lam)) * w
    return (_unit(d) * p.norm()).reshape(parent.shape)


def make_noise(recipe: NoiseRecipe, shape, dtype=torch.float32) -> torch.Tensor:
    """The recipe's noise for one candidate; shape includes the batch dimension of 1."""
    if recipe.mode in ("seed", "seed_offset"):
        return seed_noise(recipe.seed, shape, dtype)
    # Both inputs exactly as they are used in the latent's dtype, combined in float64.
    parent = make_noise(recipe.parent, shape, dtype).double()
    other = seed_noise(recipe.seed, shape, dtype).double()
    combine = slerp if recipe.mode == "slerp" else sphere
    return combine(recipe.strength, parent, other).to(dtype)
