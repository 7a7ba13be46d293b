"""The lab world: two coloured shapes on a dark-grey 64x64 canvas, described by a relation prompt.

Pure numpy + Pillow (no torch, no ComfyUI), deterministic from a ``numpy.random.Generator``.

Prompt grammar (lower case, single spaces)::

    a {colour1} {shape1} {relation} a {colour2} {shape2}

with colours red/green/blue/yellow, shapes circle/square/triangle and relations
"left of"/"right of"/"above"/"below". The two objects differ in colour, shape or both, so there are
12 * 11 * 4 = 528 prompts. ``benchmark_prompts()`` (132 of them, fixed) are held out from the
judges' training; ``judge_train_prompts()`` are the other 396. The generator trains on all 528
(the held-out property that matters for the benchmark is the judges', not the generator's).

Coordinates: x grows to the right, y grows downwards (image rows), in pixels, origin at the
top-left corner of the image; an object's centroid is the mean (x, y) of its pixels' centres.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image, ImageDraw

SIZE = 64
BACKGROUND = (48, 48, 48)
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 190, 60),
    "blue": (50, 90, 235),
    "yellow": (235, 215, 40),
}
SHAPES = ("circle", "square", "triangle")
RELATIONS = ("left of", "right of", "above", "below")
MIN_OBJECT_SIZE, MAX_OBJECT_SIZE = 12, 22  # side / diameter / triangle base and height, pixels
RENDER_GAP = 10  # renders: centroid gap along the relation axis is at least this many pixels
CHECK_GAP = 4  # satisfies(): the gap a relation needs to hold (smaller, so renders pass clearly)
PAD = "<pad>"
# Every word a prompt can contain, then the padding token (index len(VOCAB) - 1).
VOCAB: tuple[str, ...] = ("a", *COLOURS, *SHAPES, "left", "right", "of", "above", "below", PAD)
MAX_TOKENS = 8  # words in the longest prompt ("a red circle left of a blue square")

_BENCHMARK_SIZE = 132
_SPLIT_SEED = 20261130


@dataclass(frozen=True)
class Scene:
    """A parsed prompt: ``obj1`` (colour, shape) stands in ``relation`` to ``obj2``."""

    obj1: tuple[str, str]
    relation: str
    obj2: tuple[str, str]


class SceneObject(NamedTuple):
    """One object in a picture: its colour and shape names and its centroid (x, y) in pixels."""

    colour: str
    shape: str
    x: float
    y: float


class Placement(NamedTuple):
    """An object to draw: colour, shape, bounding-box centre (cx, cy) and size, in pixels."""

    colour: str
    shape: str
    cx: float
    cy: float
    size: int


def prompt_of(scene: Scene) -> str:
    """The prompt text of ``scene`` (inverse of ``parse_prompt``)."""
    (c1, s1), (c2, s2) = scene.obj1, scene.obj2
    return f"a {c1} {s1} {scene.relation} a {c2} {s2}"


def parse_prompt(prompt: str) -> Scene:
    """Parse a prompt of the world's grammar. Raises ValueError naming the problem otherwise."""
    words = prompt.strip().split()
    if len(words) == 7:  # "above"/"below" are one word
        words = words[:3] + [words[3]] + words[4:]
    elif len(words) == 8 and words[4] == "of":
        words = words[:3] + [f"{words[3]} of"] + words[5:]
    else:
        raise ValueError(f"not a lab-world prompt (expected 'a COLOUR SHAPE RELATION a COLOUR SHAPE'): {prompt!r}")
    a1, c1, s1, rel, a2, c2, s2 = words
    if a1 != "a" or a2 != "a" or rel not in RELATIONS or c1 not in COLOURS or c2 not in COLOURS \
            or s1 not in SHAPES or s2 not in SHAPES:
        raise ValueError(f"not a lab-world prompt: {prompt!r} (colours {list(COLOURS)}, shapes "
                         f"{list(SHAPES)}, relations {list(RELATIONS)})")
    if (c1, s1) == (c2, s2):
        raise ValueError(f"the two objects must differ in colour or shape: {prompt!r}")
    return Scene((c1, s1), rel, (c2, s2))


def all_prompts() -> list[str]:
    """All 528 prompts, in a fixed order (objects by colour then shape, then relation)."""
    objects = [(c, s) for c in COLOURS for s in SHAPES]
    return [prompt_of(Scene(o1, rel, o2)) for o1 in objects for o2 in objects if o1 != o2 for rel in RELATIONS]


def benchmark_prompts() -> list[str]:
    """The 132 prompts held out for the quality benchmark (the judges never train on them).

    A fixed seeded choice; returned in ``all_prompts()`` order.
    """
    prompts = all_prompts()
    chosen = np.random.default_rng(_SPLIT_SEED).permutation(len(prompts))[:_BENCHMARK_SIZE]
    return [prompts[i] for i in sorted(chosen)]


def judge_train_prompts() -> list[str]:
    """The 396 prompts the judges may train on: all prompts minus ``benchmark_prompts()``."""
    held = set(benchmark_prompts())
    return [p for p in all_prompts() if p not in held]


def tokenize(prompt: str) -> list[int]:
    """Word-level token ids into ``VOCAB``, padded with PAD to ``MAX_TOKENS``.

    The empty prompt (the CFG negative) is all padding. Raises ValueError on an unknown word.
    """
    words = prompt.strip().lower().split()
    if len(words) > MAX_TOKENS:
        raise ValueError(f"prompt longer than {MAX_TOKENS} words: {prompt!r}")
    unknown = [w for w in words if w not in VOCAB or w == PAD]
    if unknown:
        raise ValueError(f"words outside the lab world's vocabulary {list(VOCAB[:-1])}: {unknown}")
    return [VOCAB.index(w) for w in words] + [VOCAB.index(PAD)] * (MAX_TOKENS - len(words))


def _mask(p: Placement) -> np.ndarray:
    """Boolean [SIZE, SIZE] mask of one object, drawn by Pillow without antialiasing."""
    img = Image.new("L", (SIZE, SIZE), 0)
    draw = ImageDraw.Draw(img)
    h = p.size / 2
    x0, y0, x1, y1 = p.cx - h, p.cy - h, p.cx + h - 1, p.cy + h - 1
    if p.shape == "circle":
        draw.ellipse((x0, y0, x1, y1), fill=255)
    elif p.shape == "square":
        draw.rectangle((x0, y0, x1, y1), fill=255)
    elif p.shape == "triangle":  # apex up, base at the bottom
        draw.polygon([(p.cx - 0.5, y0), (x1, y1), (x0, y1)], fill=255)
    else:
        raise ValueError(f"unknown shape {p.shape!r}; shapes are {SHAPES}")
    return np.asarray(img) > 127


def draw(placements: list[Placement]) -> tuple[np.ndarray, list[SceneObject]]:
    """Draw objects on the background. Returns (uint8 [64, 64, 3] RGB image, the objects with
    their pixel centroids). Later placements paint over earlier ones; an object that ends up with no
    visible pixel raises ValueError."""
    image = np.empty((SIZE, SIZE, 3), np.uint8)
    image[:] = BACKGROUND
    masks = [_mask(p) for p in placements]
    for p, m in zip(placements, masks, strict=True):
        if p.colour not in COLOURS:
            raise ValueError(f"unknown colour {p.colour!r}; colours are {list(COLOURS)}")
        image[m] = COLOURS[p.colour]
    objects = []
    for i, (p, m) in enumerate(zip(placements, masks, strict=True)):
        visible = m & ~np.any(masks[i + 1:], axis=0) if i + 1 < len(masks) else m
        ys, xs = np.nonzero(visible)
        if len(xs) == 0:
            raise ValueError(f"object {i} ({p.colour} {p.shape}) has no visible pixel")
        objects.append(SceneObject(p.colour, p.shape, float(xs.mean()), float(ys.mean())))
    return image, objects


def _relation_gap(relation: str, a: SceneObject | tuple, b: SceneObject | tuple) -> float:
    """How far (pixels) ``a`` lies in ``relation``'s direction from ``b``, centroid to centroid."""
    ax, ay, bx, by = a[2], a[3], b[2], b[3]
    return {"left of": bx - ax, "right of": ax - bx, "above": by - ay, "below": ay - by}[relation]


def satisfies(scene_objects: list, prompt: str, gap: float = CHECK_GAP) -> bool:
    """Whether a picture's detected objects follow ``prompt``.

    ``scene_objects``: the objects found in the picture, each a ``SceneObject`` or a tuple
    (colour, shape, centroid x, centroid y) in pixels (x right, y down). True iff the picture holds
    exactly two objects, one is the prompt's first object and the other its second (colour and shape
    both match), and the first lies in the relation's direction from the second by at least
    ``gap`` pixels along that axis only ("left of": x2 - x1 >= gap; "right of": x1 - x2 >= gap;
    "above": y2 - y1 >= gap; "below": y1 - y2 >= gap). The other axis is free. Renders use a
    larger gap (``RENDER_GAP``) so they satisfy their prompt with a clear margin.
    """
    scene = parse_prompt(prompt)
    if len(scene_objects) != 2:
        return False
    for a, b in (scene_objects, scene_objects[::-1]):
        if (a[0], a[1]) == scene.obj1 and (b[0], b[1]) == scene.obj2:
            return _relation_gap(scene.relation, a, b) >= gap
    return False


def parts_satisfied(scene_objects: list, prompt: str, gap: float = CHECK_GAP) -> int:
    """A graded reading of ``satisfies``: how many of the prompt's three parts a picture gets right,
    0-3: its first object is present (colour and shape), its second is present, and the whole
    prompt holds (``satisfies``: exactly these two objects, in the relation). 3 iff ``satisfies``.
    ``scene_objects`` as for ``satisfies``. Raises ValueError for text outside the grammar."""
    scene = parse_prompt(prompt)
    present = {(o[0], o[1]) for o in scene_objects}
    return int(scene.obj1 in present) + int(scene.obj2 in present) + int(satisfies(scene_objects, prompt, gap))


def _disjoint(p: Placement, q: Placement, margin: float = 2.0) -> bool:
    """Bounding boxes (with ``margin`` pixels between them) do not overlap."""
    reach = (p.size + q.size) / 2 + margin
    return abs(p.cx - q.cx) >= reach or abs(p.cy - q.cy) >= reach


def render_scene(prompt: str, rng: np.random.Generator) -> tuple[np.ndarray, list[SceneObject]]:
    """A random picture of ``prompt``: (uint8 [64, 64, 3] RGB, its two objects with centroids).

    Sizes are uniform in [12, 22] pixels, positions uniform over placements that keep both objects
    inside the image, apart (bounding boxes at least 2 px apart) and their centroids at least
    ``RENDER_GAP`` pixels apart along the relation's axis (checked on the drawn pixels).
    Deterministic given the state of ``rng``. Raises ValueError for a prompt outside the grammar.
    """
    scene = parse_prompt(prompt)
    for _ in range(1000):
        s1, s2 = (int(v) for v in rng.integers(MIN_OBJECT_SIZE, MAX_OBJECT_SIZE + 1, size=2))
        c1 = rng.uniform(s1 / 2 + 1, SIZE - s1 / 2 - 1, size=2)
        c2 = rng.uniform(s2 / 2 + 1, SIZE - s2 / 2 - 1, size=2)
        p1 = Placement(*scene.obj1, float(np.round(c1[0])), float(np.round(c1[1])), s1)
        p2 = Placement(*scene.obj2, float(np.round(c2[0])), float(np.round(c2[1])), s2)
        if not _disjoint(p1, p2):
            continue
        image, objects = draw([p1, p2])
        if _relation_gap(scene.relation, objects[0], objects[1]) >= RENDER_GAP:
            return image, objects
    raise RuntimeError(f"could not place {prompt!r} in 1000 tries")  # not reached for valid prompts


def render(prompt: str, rng: np.random.Generator) -> np.ndarray:
    """A random picture of ``prompt``: uint8 [64, 64, 3] RGB (see ``render_scene``)."""
    return render_scene(prompt, rng)[0]


def pixel_objects(image: np.ndarray, tolerance: float = 80.0, min_pixels: int = 20) -> list[SceneObject]:
    """Objects in a uint8 [64, 64, 3] picture by pixel colour: pixels within ``tolerance`` (RGB
    distance) of a palette colour, connected components of at least ``min_pixels`` pixels, shape
    from the component's fill ratio of its bounding box (> 0.88 square, > 0.64 circle, else
    triangle; a disc fills pi/4 = 0.785, a triangle 1/2). Exact on renders; on generated pictures
    a quick heuristic only (the lab's held-out evaluator is judge E, a trained model)."""
    from scipy import ndimage

    found = []
    px = image.astype(np.float32)
    for name, rgb in COLOURS.items():
        labels, n = ndimage.label(np.linalg.norm(px - np.array(rgb, np.float32), axis=-1) < tolerance)
        for k in range(1, n + 1):
            ys, xs = np.nonzero(labels == k)
            if len(xs) < min_pixels:
                continue
            fill = len(xs) / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
            shape = "square" if fill > 0.88 else "circle" if fill > 0.64 else "triangle"
            found.append(SceneObject(name, shape, float(xs.mean()), float(ys.mean())))
    return found
