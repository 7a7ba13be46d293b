"""The lab world's two judges: E (held-out evaluator) and V (search verifier). Torch + scipy only.

- **E** (``SegNet`` + ``detect`` + ``world.satisfies``): a small encoder-decoder CNN labels every
  pixel as background or one of the 12 (colour, shape) objects; connected components of each
  colour (the component's shape is the shape class with the largest summed probability over its
  pixels) give objects with pixel centroids, and the world's own rule decides pass (1) / fail (0).
  E's judgement does not depend on the prompt until ``satisfies``, so it carries over to prompts
  it never saw.
- **V** (``MatchNet``): an image-text matcher trained only on match / no-match labels. A strided
  CNN maps the image to a feature map; each object of the prompt (colour + shape embeddings) is a
  query whose attention over the map gives its presence and expected position; a learned direction
  per relation scores their offset; a small MLP gives the match logit. Score = 10 * sigmoid(logit).

Images everywhere are ComfyUI IMAGE tensors: float [B, H, W, 3] in 0..1; other sizes than 64x64
are resized (area / bilinear) to the world's 64x64 first. Weights: ``lab/weights/judge_e.safetensors``
and ``judge_v.safetensors`` written by ``lab/train_judges.py``.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from scipy import ndimage
from torch import nn


def _world():
    """The one copy of lab/world.py: ``lab.world`` when imported as the package ``lab``; the copy the
    ComfyUI lab pack loaded by file path (``eacps_lab_world``, see comfy_lab_pack/_lab.py); else
    ``world`` from sys.path (scripts that put lab/ on it)."""
    if __package__:
        return importlib.import_module(f"{__package__}.world")
    if "eacps_lab_world" in sys.modules:
        return sys.modules["eacps_lab_world"]
    return importlib.import_module("world")


world = _world()

WEIGHTS = Path(__file__).resolve().parent / "weights"
E_FILE = WEIGHTS / "judge_e.safetensors"
V_FILE = WEIGHTS / "judge_v.safetensors"

COLOURS = tuple(world.COLOURS)
SHAPES = tuple(world.SHAPES)
RELATIONS = tuple(world.RELATIONS)
OBJECTS: tuple[tuple[str, str], ...] = tuple((c, s) for c in COLOURS for s in SHAPES)
CLASSES: tuple[str, ...] = ("background", *(f"{c} {s}" for c, s in OBJECTS))  # class 1 + 3*ci + si
MIN_AREA = 20  # pixels: a component smaller than this is a smudge, not an object (objects >= ~70)


class JudgeError(RuntimeError):
    """A judge could not run (missing weights, wrong input). The message says what to do."""


def to_nchw64(images: torch.Tensor) -> torch.Tensor:
    """IMAGE [B, H, W, 3] float 0..1 -> float32 [B, 3, 64, 64] (resized if needed)."""
    if images.ndim != 4 or images.shape[-1] != 3:
        raise JudgeError(f"expected an IMAGE [B, H, W, 3], got {tuple(images.shape)}")
    x = images.detach().to(torch.float32).permute(0, 3, 1, 2)
    if x.shape[-2:] != (world.SIZE, world.SIZE):
        mode = "area" if min(x.shape[-2:]) >= world.SIZE else "bilinear"
        x = F.interpolate(x, size=(world.SIZE, world.SIZE), mode=mode)
    return x.clamp(0, 1).contiguous()


def _conv(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


# ------------------------------------------------------------------------------------------- E


class SegNet(nn.Module):
    """E's network: [B, 3, 64, 64] in 0..1 -> logits [B, 13, 64, 64] over ``CLASSES``.

    A small U-Net: a stride-2 stem to 32x32, then 16x16 and 8x8 (the receptive field there covers a
    whole object, which the shape needs), back up to 16x16 and 32x32 with skip connections;
    logits bilinearly upsampled to 64x64.
    """

    def __init__(self, width: int = 16):
        super().__init__()
        w = width
        self.stem = _conv(3, w, 2)                                                # 32
        self.down1 = nn.Sequential(_conv(w, 2 * w, 2), _conv(2 * w, 2 * w))          # 16
        self.down2 = nn.Sequential(_conv(2 * w, 3 * w, 2), _conv(3 * w, 3 * w), _conv(3 * w, 3 * w))  # 8
        self.up1 = _conv(5 * w, 2 * w)                                            # 16
        self.up2 = nn.Sequential(nn.Conv2d(3 * w, w, 1), nn.BatchNorm2d(w), nn.ReLU())  # 32
        self.head = nn.Conv2d(w, len(CLASSES), 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = (x - 0.5) / 0.25
        s32 = self.stem(x)
        s16 = self.down1(s32)
        s8 = self.down2(s16)
        u16 = self.up1(torch.cat([F.interpolate(s8, scale_factor=2.0, mode="nearest"), s16], 1))
        u32 = self.up2(torch.cat([F.interpolate(u16, scale_factor=2.0, mode="nearest"), s32], 1))
        return F.interpolate(self.head(u32), scale_factor=2.0, mode="bilinear", align_corners=False)


def detect(logits: torch.Tensor, min_area: int = MIN_AREA) -> list[list[world.SceneObject]]:
    """Objects in each image from SegNet logits [B, 13, H, W]: per colour, the 4-connected
    components of pixels whose most likely class has that colour, at least ``min_area`` pixels;
    each component's shape is the shape whose class has the largest summed probability over it;
    its centroid is the mean (x, y) of its pixel centres (x right, y down, as ``world``)."""
    probs = logits.detach().float().softmax(1).cpu().numpy()
    top = probs.argmax(1)
    found = []
    for b in range(probs.shape[0]):
        objects = []
        colour_of = np.where(top[b] > 0, (top[b] - 1) // len(SHAPES), -1)
        for ci, colour in enumerate(COLOURS):
            labels, n = ndimage.label(colour_of == ci)
            for k in range(1, n + 1):
                ys, xs = np.nonzero(labels == k)
                if len(xs) < min_area:
                    continue
                mass = probs[b, 1 + ci * len(SHAPES):1 + (ci + 1) * len(SHAPES)][:, ys, xs].sum(1)
                objects.append(world.SceneObject(colour, SHAPES[int(mass.argmax())], float(xs.mean()), float(ys.mean())))
        found.append(objects)
    return found


# ------------------------------------------------------------------------------------------- V


def prompt_slots(prompt: str) -> list[int]:
    """The five slot ids of a prompt: colour 1, shape 1, relation, colour 2, shape 2 (ValueError
    from ``world.parse_prompt`` for text outside the grammar)."""
    scene = world.parse_prompt(prompt)
    (c1, s1), (c2, s2) = scene.obj1, scene.obj2
    return [COLOURS.index(c1), SHAPES.index(s1), RELATIONS.index(scene.relation), COLOURS.index(c2), SHAPES.index(s2)]


class MatchNet(nn.Module):
    """V's network: image [B, 3, 64, 64] in 0..1 and prompt slots [B, 5] (``prompt_slots``) ->
    match logits [B]. Trained only on match / no-match labels (no pixel labels, unlike E).

    A strided CNN maps the image to a [dim, 16, 16] feature map. Each of the prompt's two objects
    is a query (colour embedding + shape embedding, tables shared by both slots, so objects seen in
    any slot carry over to unseen prompts); its dot products with the map give an attention over
    positions (-> the object's expected position) and a presence value (the largest dot product).
    The relation is a learned direction: the projection of (position 1 - position 2) on it. A small
    MLP over (presence 1, presence 2, projection) gives the logit. Training adds an object-level
    signal (no pixel labels): every object query's logits are pulled towards a heat map around the
    centroids of that object in the picture.
    """

    def __init__(self, width: int = 16, dim: int = 32):
        super().__init__()
        w = width
        self.features = nn.Sequential(_conv(3, w, 2), _conv(w, w), _conv(w, 2 * w, 2), _conv(2 * w, 2 * w),
                                      _conv(2 * w, 2 * w), nn.Conv2d(2 * w, dim, 1))
        self.colour = nn.Embedding(len(COLOURS), dim)
        self.shape = nn.Embedding(len(SHAPES), dim)
        self.direction = nn.Embedding(len(RELATIONS), 2)
        self.head = nn.Sequential(nn.Linear(3, 32), nn.ReLU(), nn.Linear(32, 1))
        side = world.SIZE // 4
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, side), torch.linspace(-1, 1, side), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.flatten(), ys.flatten()], 1), persistent=False)  # [HW, 2]

    def _find(self, fmap: torch.Tensor, colour: torch.Tensor, shape: torch.Tensor):
        query = self.colour(colour) + self.shape(shape)  # [B, D]
        logits = torch.einsum("bdn,bd->bn", fmap, query) / fmap.shape[1] ** 0.5
        return logits.amax(1), logits.softmax(1) @ self.grid  # presence [B], position [B, 2]

    def feature_map(self, x: torch.Tensor) -> torch.Tensor:
        return self.features((x - 0.5) / 0.25).flatten(2)  # [B, D, HW]

    def object_logits(self, fmap: torch.Tensor) -> torch.Tensor:
        """Per-position logits of every object query ``OBJECTS`` order: [B, 12, HW] (training
        supervises them with heat maps around the objects' centroids)."""
        queries = (self.colour.weight[:, None] + self.shape.weight[None]).reshape(len(OBJECTS), -1)
        return torch.einsum("bdn,kd->bkn", fmap, queries) / fmap.shape[1] ** 0.5

    def match(self, fmap: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        p1, pos1 = self._find(fmap, slots[:, 0], slots[:, 1])
        p2, pos2 = self._find(fmap, slots[:, 3], slots[:, 4])
        projection = ((pos1 - pos2) * self.direction(slots[:, 2])).sum(1)
        return self.head(torch.stack([p1, p2, projection], 1)).squeeze(1)

    def forward(self, x: torch.Tensor, slots: torch.Tensor) -> torch.Tensor:
        return self.match(self.feature_map(x), slots)


# ------------------------------------------------------------------------------ weights, scoring


def save(module: nn.Module, path: Path, meta: dict) -> None:
    """Write a judge's state dict (float32) with its constructor arguments in the metadata."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().to(torch.float32).contiguous() for k, v in module.state_dict().items()
             if v.dtype.is_floating_point}
    save_file(state, str(path), metadata={"judge": json.dumps(meta)})


def load(which: str, path: Path | None = None) -> nn.Module:
    """Build judge ``which`` ("E" or "V") from its safetensors file, in eval mode on the CPU.
    Raises JudgeError naming the training command when the file is missing."""
    path = Path(path or (E_FILE if which == "E" else V_FILE))
    if not path.is_file():
        raise JudgeError(f"judge {which}: weights {path} not found; train them with "
                         "`.venv/bin/python lab/train_judges.py` (minutes on the CPU)")
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = json.loads((f.metadata() or {}).get("judge", "{}"))
    module = (SegNet if which == "E" else MatchNet)(**meta.get("args", {}))
    state = load_file(str(path))
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.endswith("num_batches_tracked")]
    if missing or unexpected:
        raise JudgeError(f"judge {which}: {path} does not match the network (missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}); retrain with lab/train_judges.py")
    return module.eval().requires_grad_(False)


@torch.no_grad()
def e_objects(net: SegNet, images: torch.Tensor) -> list[list[world.SceneObject]]:
    """E's detected objects for IMAGE [B, H, W, 3]."""
    x = to_nchw64(images).to(next(net.parameters()).device)
    return detect(net(x))


def e_pass(net: SegNet, images: torch.Tensor, prompt: str) -> torch.Tensor:
    """E's verdict per image: float64 [B] of 1.0 (the picture follows ``prompt``) or 0.0."""
    return torch.tensor([float(world.satisfies(objs, prompt)) for objs in e_objects(net, images)],
                        dtype=torch.float64)


def e_parts(net: SegNet, images: torch.Tensor, prompt: str) -> torch.Tensor:
    """E's graded reading per image: float64 [B] of ``world.parts_satisfied`` (0-3 parts of the
    prompt right on E's detected objects); 3 exactly where ``e_pass`` is 1."""
    return torch.tensor([float(world.parts_satisfied(objs, prompt)) for objs in e_objects(net, images)],
                        dtype=torch.float64)


@torch.no_grad()
def v_logits(net: MatchNet, images: torch.Tensor, prompt: str) -> torch.Tensor:
    """V's match logit per image: float64 [B] (10 * sigmoid of it is V's score)."""
    device = next(net.parameters()).device
    x = to_nchw64(images).to(device)
    slots = torch.tensor([prompt_slots(prompt)] * x.shape[0], dtype=torch.long, device=device)
    return net(x, slots).to("cpu", torch.float64)
