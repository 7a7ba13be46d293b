"""The candidate grid: every candidate of a pool as a labelled thumbnail, one IMAGE [1, H, W, 3].

Each cell shows the candidate's image scaled to ``thumb`` px on its longer side, framed by a
border (winner: green, elite of any round: orange, invalid: red, pruned by screening: purple,
others: grey) and label lines: ``#id g<generation>``, ``seed <short seed>``, ``U <potential>`` and
the two most heavily weighted scores, one per line (or the first two scores when no weights are
set); a pruned candidate shows its preview image, ``pruned@<step>`` and its preview potential
instead. A legend strip on top names the colours and the budget, with the candidates left unspent
by adaptive stopping. Cells run left to right, top to bottom, in candidate order. Free of ComfyUI.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .pool import Candidate, Pool

WINNER = (40, 200, 60)
ELITE = (255, 150, 0)
OTHER = (90, 90, 90)
INVALID = (200, 30, 30)
PRUNED = (130, 70, 170)
BACKGROUND = (24, 24, 24)
TEXT = (235, 235, 235)

BORDER = 4
LINE = 13
LABEL_LINES = 5
PAD = 6
LEGEND = 2 * LINE + PAD


def _font(size: int = 11):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def short_seed(seed: int) -> str:
    s = str(int(seed))
    return s if len(s) <= 9 else s[:4] + ".." + s[-3:]


def _label_aspects(pool: Pool) -> list[str]:
    names = pool.display_names()
    shown = list(dict.fromkeys(names.values()))
    if pool.weights:
        weighted = [n for n, w in sorted(pool.weights, key=lambda nw: (-nw[1], nw[0])) if w > 0]
        # a weight may use a qualified name; show the report's name for the same score
        accepted = pool.score_names()
        weighted = [names[accepted[n]] for n in weighted if n in accepted]
        shown = list(dict.fromkeys(weighted + shown))
    return shown[:2]


def elite_ids(pool: Pool) -> set[int]:
    """Candidates that were elites in any refinement round or in the pool's last selection."""
    ids = {cid for r in pool.rounds for cid in r.elites}
    if pool.selection is not None:
        ids.update(pool.selection.ids)
    return ids


def layout(n: int, image_hw: tuple[int, int], thumb: int = 128) -> tuple[int, int, int, int]:
    """(columns, rows, cell width, cell height) of the grid for n candidates of size image_hw."""
    h, w = image_hw
    scale = thumb / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    cols = max(1, math.ceil(math.sqrt(n)))
    rows = math.ceil(n / cols)
    cell_w = max(tw, 120) + 2 * BORDER + PAD
    cell_h = th + 2 * BORDER + LABEL_LINES * LINE + PAD
    return cols, rows, cell_w, cell_h


def cell_origin(index: int, n: int, image_hw: tuple[int, int], thumb: int = 128) -> tuple[int, int]:
    """Top-left pixel (x, y) of candidate ``index``'s border in the grid."""
    cols, _, cell_w, cell_h = layout(n, image_hw, thumb)
    return PAD + (index % cols) * cell_w, LEGEND + PAD + (index // cols) * cell_h


def _thumbnails(images: list[torch.Tensor], size: tuple[int, int]) -> list[Image.Image]:
    """Each candidate's image brought to ``size`` (h, w) before the conversion to 8-bit: shrunk by
    area averaging (converting full-size images first, then resizing in PIL, cost 4x more at
    1024 px), small images enlarged by whole pixels."""
    thumbs = []
    for image in images:
        # an invalid candidate's NaN pixels are drawn black (its cell says why it is out)
        x = image.detach().to("cpu", torch.float32)[..., :3].nan_to_num(0.0, 1.0, 0.0).movedim(-1, 1)
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        shrink = size[0] <= x.shape[-2] and size[1] <= x.shape[-1]
        small = torch.nn.functional.interpolate(x, size=size, mode="area" if shrink else "nearest-exact")
        thumbs.append(Image.fromarray(small[0].clamp(0, 1).mul(255).round().to(torch.uint8).movedim(0, -1).numpy()))
    return thumbs


def _wrap(text: str, lines: int, width: int = 20) -> list[str]:
    words, out = text.split(), [""]
    for w in words:
        if out[-1] and len(out[-1]) + 1 + len(w) > width:
            out.append("")
        out[-1] = (out[-1] + " " + w).strip()
    return out[:lines]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def render_grid(pool: Pool, winner: int | None, thumb: int = 128) -> torch.Tensor:
    """The grid of every candidate in ``pool`` (which must carry images) as IMAGE [1, H, W, 3];
    ``winner`` None for a search that stopped before choosing one."""
    cands: tuple[Candidate, ...] = pool.candidates
    if not cands:
        raise ValueError("the pool has no candidates to draw")
    h, w = cands[0].image.shape[1:3]
    n = len(cands)
    cols, rows, cell_w, cell_h = layout(n, (h, w), thumb)
    scale = thumb / max(h, w)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    width = 2 * PAD + cols * cell_w
    height = LEGEND + 2 * PAD + rows * cell_h
    canvas = Image.new("RGB", (width, height), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    font = _font()
    elites = elite_ids(pool)
    aspects = _label_aspects(pool)
    names = pool.display_names()

    budget = pool.budget()
    title = f"EACPS candidates: N = {budget['formula']}"
    if budget["unspent"]:
        title += f", {budget['unspent']} unspent"
    draw.text((PAD, PAD // 2), title, fill=TEXT, font=font)
    x = PAD
    legend = [(WINNER, f"winner #{winner}" if winner is not None else "no winner: search stopped"),
              (ELITE, "elite"), (OTHER, "other")]
    if any(not c.valid for c in cands):
        legend.append((INVALID, "invalid"))
    if budget["pruned"]:
        legend.append((PRUNED, "pruned (preview)"))
    for colour, label in legend:
        draw.rectangle([x, PAD // 2 + LINE + 1, x + 10, PAD // 2 + LINE + 11], fill=colour)
        draw.text((x + 14, PAD // 2 + LINE), label, fill=TEXT, font=font)
        x += 14 + int(draw.textlength(label, font=font)) + 16

    thumbs = _thumbnails([c.image for c in cands], (th, tw))
    for i, c in enumerate(cands):
        x0, y0 = cell_origin(i, n, (h, w), thumb)
        colour = (WINNER if c.id == winner else ELITE if c.id in elites else INVALID if not c.valid
                  else PRUNED if c.pruned else OTHER)
        draw.rectangle([x0, y0, x0 + tw + 2 * BORDER - 1, y0 + th + 2 * BORDER - 1], fill=colour)
        canvas.paste(thumbs[i], (x0 + BORDER, y0 + BORDER))
        scores = {names[(ident, asp)]: v for ident, asp, v in c.scores}
        lines = [
            f"#{c.id} g{c.generation}" + ("  WINNER" if c.id == winner else "  elite" if c.id in elites
                                          else "  INVALID" if not c.valid else ""),
            f"seed {short_seed(c.seed)}",
        ] + ([f"pruned@{c.pruned_at}", f"preview U {_fmt(c.screens[-1].potential)}"] if c.pruned else [
            f"U {_fmt(c.potential)}",
        ] + ([f"{a[:14]} {_fmt(scores.get(a))}" for a in aspects] if c.valid else _wrap(c.invalid, 2)))
        ty = y0 + th + 2 * BORDER + 1
        for line in lines:
            draw.text((x0, ty), line, fill=TEXT, font=font)
            ty += LINE
    arr = np.asarray(canvas, dtype=np.float32) / 255.0
    return torch.from_numpy(arr.copy()).unsqueeze(0)
