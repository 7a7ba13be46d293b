"""Render docs/icon.png, the pack's registry icon (pyproject [tool.comfy] Icon): a 3x3 grid of
noise candidates, the elites framed orange and the winner green, as the candidate grid shows them.

    .venv/bin/python scripts/make_icon.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parents[1] / "docs" / "icon.png"
SIZE, CELLS, GAP, BORDER = 256, 3, 12, 6
BACKGROUND, ELITE, WINNER = (24, 24, 24), (230, 140, 30), (40, 200, 90)


def main() -> None:
    rng = np.random.default_rng(0)
    icon = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(icon)
    cell = (SIZE - GAP * (CELLS + 1)) // CELLS
    frames = {4: WINNER, 0: ELITE, 8: ELITE}
    for i in range(CELLS * CELLS):
        x, y = GAP + (i % CELLS) * (cell + GAP), GAP + (i // CELLS) * (cell + GAP)
        # Noise that resolves towards a smooth image for the winner: the search's promise, drawn.
        blocks = 10  # coarse noise: reads at small sizes and keeps the file small
        smooth = np.linspace(0, 255, blocks)[None, :, None] * np.array([0.9, 0.55, 0.3])
        mix = 0.85 if i == 4 else 0.3
        tile = (1 - mix) * rng.uniform(0, 255, (blocks, blocks, 3)) + mix * smooth
        tile = Image.fromarray(tile.clip(0, 255).astype(np.uint8)).resize((cell, cell), Image.NEAREST)
        icon.paste(tile, (x, y))
        if i in frames:
            draw.rectangle([x - 1, y - 1, x + cell, y + cell], outline=frames[i], width=BORDER)
    icon.save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
