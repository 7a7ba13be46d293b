"""The candidate grid and the winner summary, without a host."""

import json
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from eacps.search.grid import (
    BACKGROUND,
    BORDER,
    ELITE,
    OTHER,
    WINNER,
    _fmt,
    _label_aspects,
    elite_ids,
    render_grid,
    short_seed,
)
from eacps.search.pool import Pool, VerifierInfo
from eacps.search.report import report_json, winner_summary
from eacps.search.strategy import GlobalExploration, LocalRefinement, select_elites, to_candidates


def scored_pool(n: int, k_local: int = 0, size=(32, 48)) -> tuple[Pool, int]:
    """n global candidates (+ k_local children of the top 2) with images, scores and potentials."""
    gen = torch.Generator().manual_seed(n)
    info = VerifierInfo("technical", "technical", ("sharpness", "exposure"), "ctx")

    def fill(pool, proposals, round_=None):
        imgs = [torch.rand((1, *size, 3), generator=gen) for _ in proposals]
        pool = pool.add(to_candidates(pool, proposals, image=imgs), round_)
        values = {c.id: {"sharpness": float(c.id % 7), "exposure": float(10 - c.id % 5)} for c in pool.candidates}
        pool = pool.with_scores(info, {c.id: values[c.id] for c in pool.candidates if not c.scored_by(info.identity)},
                                {c.id: 0.0 for c in pool.candidates})
        w = {"sharpness": 2.0, "exposure": 1.0}
        return pool.with_potentials({c.id: 2 * values[c.id]["sharpness"] + values[c.id]["exposure"]
                                     for c in pool.candidates}, w)

    pool = fill(Pool(setup=None, k_global=n), GlobalExploration(n, 7, np.random.default_rng(0)).ask())
    if k_local:
        pool = pool.with_elites(select_elites(pool, 2))
        proposals, round_ = LocalRefinement(k_local, "slerp", 0.6, 0.5, np.random.default_rng(1)).ask(pool)
        pool = fill(pool, proposals, round_)
    winner = select_elites(pool, 1)[0]
    return pool.with_elites((winner,)), winner


def pixel(grid, x, y):
    return tuple(int(round(v * 255)) for v in grid[0, y, x].tolist())


def two_tone(n: int, size=(16, 24)) -> list[torch.Tensor]:
    """Candidate i's picture: left half one colour, right half another, both unique to i (so a
    thumbnail can be found in the grid by its colours, and a mirrored one would show)."""
    h, w = size
    out = []
    for i in range(n):
        img = torch.empty(1, h, w, 3)
        img[:, :, : w // 2] = torch.tensor([10 + 9 * i, 200, 30]) / 255
        img[:, :, w // 2:] = torch.tensor([30, 10 + 9 * i, 200]) / 255
        out.append(img)
    return out


def with_images(pool: Pool, imgs: list[torch.Tensor]) -> Pool:
    return replace(pool, candidates=tuple(replace(c, image=im) for c, im in zip(pool.candidates, imgs, strict=True)))


def find_block(grid: torch.Tensor, rgb) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) bounding box of the pixels of exactly colour ``rgb``; asserts they fill it."""
    arr = (grid[0] * 255).round().to(torch.int64)
    mask = (arr == torch.tensor(rgb)).all(-1)
    ys, xs = mask.nonzero(as_tuple=True)
    assert len(xs), f"colour {rgb} is not in the grid"
    x0, x1, y0, y1 = int(xs.min()), int(xs.max()) + 1, int(ys.min()), int(ys.max()) + 1
    assert mask[y0:y1, x0:x1].all() and mask.sum() == (x1 - x0) * (y1 - y0), f"colour {rgb} is not one block"
    return x0, y0, x1, y1


def thumbnails(grid, n) -> list[tuple[int, int, int, int]]:
    """Each candidate's thumbnail box, found by the candidate's own colours: the left-half block
    and the right-half block side by side, same height."""
    boxes = []
    for i in range(n):
        lx0, ly0, lx1, ly1 = find_block(grid, (10 + 9 * i, 200, 30))
        rx0, ry0, rx1, ry1 = find_block(grid, (30, 10 + 9 * i, 200))
        assert (ry0, ry1) == (ly0, ly1) and rx0 == lx1 and rx1 - rx0 == lx1 - lx0, i
        boxes.append((lx0, ly0, rx1, ry1))
    return boxes


@pytest.mark.parametrize("n", [1, 5, 9, 20])
def test_each_cell_shows_its_own_candidates_picture_in_order(n):
    pool, winner = scored_pool(n)
    pool = with_images(pool, two_tone(n))
    grid = render_grid(pool, winner)
    boxes = thumbnails(grid, n)
    # 16 x 24 images, thumb 128: enlarged to 85 x 128 (by hand: 16 * 128 / 24 = 85.3)
    assert all((x1 - x0, y1 - y0) == (128, 85) for x0, y0, x1, y1 in boxes)
    # reading order: ceil(sqrt(n)) columns, left to right, then top to bottom
    cols = math.ceil(math.sqrt(n))
    for i, (x0, y0, _, _) in enumerate(boxes):
        same_row, same_col = boxes[i - i % cols], boxes[i % cols]
        assert y0 == same_row[1] and x0 == same_col[0], i
        if i % cols:
            assert x0 > boxes[i - 1][2]
        if i >= cols:
            assert y0 > boxes[i - cols][3]
    assert len({b[0] for b in boxes}) == min(n, cols) and len({b[1] for b in boxes}) == math.ceil(n / cols)


def test_small_and_large_pictures_keep_their_pixels():
    # a 2 x 3 picture enlarged by whole pixels; a 256 x 384 flat picture shrunk: colours stay exact
    pool, winner = scored_pool(2)
    small = torch.tensor([[[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], [[1.0, 1.0, 0], [0, 1.0, 1.0], [1.0, 0, 1.0]]])[None]
    grid = render_grid(with_images(pool, [small, small.clone()]), winner)
    # 2 x 3 -> 85 x 128 (scale 42.67): every source pixel becomes a block of one colour, in place
    arr = (grid[0] * 255).round().to(torch.int64)
    red = find_block(grid[:, :, : grid.shape[2] // 2], (255, 0, 0))
    x0, y0 = red[0], red[1]
    for (r, c), rgb in {(0, 1): (0, 255, 0), (0, 2): (0, 0, 255), (1, 0): (255, 255, 0), (1, 2): (255, 0, 255)}.items():
        y, x = y0 + int((r + 0.5) * 85 / 2), x0 + int((c + 0.5) * 128 / 3)
        assert tuple(arr[y, x].tolist()) == rgb, (r, c)
    big = with_images(pool, two_tone(2, size=(256, 384)))
    assert all((x1 - x0, y1 - y0) == (128, 85) for x0, y0, x1, y1 in thumbnails(render_grid(big, winner), 2))


def test_winner_and_elites_are_framed_in_their_colours():
    pool, winner = scored_pool(6, k_local=2)
    n = len(pool)
    grid = render_grid(with_images(pool, two_tone(n)), winner)
    elites = set(pool.rounds[0].elites)
    assert winner not in elites  # this pool's winner is a child: all three colours are drawn
    for c, (x0, y0, x1, y1) in zip(pool.candidates, thumbnails(grid, n), strict=True):
        want = WINNER if c.id == winner else ELITE if c.id in elites else OTHER
        # the frame: BORDER px around the thumbnail, on all four sides
        for x, y in [(x0 - BORDER, y0 - BORDER), (x0 - 1, (y0 + y1) // 2), (x1, (y0 + y1) // 2),
                     ((x0 + x1) // 2, y0 - 1), ((x0 + x1) // 2, y1), (x1 + BORDER - 1, y1 + BORDER - 1)]:
            assert pixel(grid, x, y) == want, (c.id, x, y)
        assert pixel(grid, x0 - BORDER - 1, y0) != want, c.id  # the frame is BORDER px wide
        assert pixel(grid, (x0 + x1) // 2, y1 + BORDER) != want, c.id  # ... below the picture too


def test_grid_refuses_an_empty_pool():
    with pytest.raises(ValueError, match="no candidates"):
        render_grid(Pool(setup=None, k_global=1), 0)


def test_short_seed_keeps_small_seeds_whole():
    assert short_seed(12345) == "12345"
    assert short_seed(2**60) == "1152..976"


def test_winner_summary_is_the_winner_only():
    pool, winner = scored_pool(5)
    report = json.loads(report_json(pool, winner, {"steps": 4}))
    summary = winner_summary(report)
    assert summary["winner"] == winner and summary["seed"] == pool.get(winner).seed
    assert summary["recipe"] == pool.get(winner).recipe.to_dict()
    assert summary["setup"] == {"steps": 4} and summary["budget"] == "5 = 5"
    assert "candidates" not in summary
    with pytest.raises(ValueError, match="not an EACPS report"):
        winner_summary({"winner": 0})


def test_grid_size_and_legend_by_hand():
    # 5 candidates of 16 x 24: 3 columns, 2 rows; cell 128 + 2 * 4 (border) + 6 (pad) = 142 wide and
    # 85 + 8 + 5 label lines * 13 + 6 = 164 tall; a 6 px margin round the cells and a 32 px legend strip
    pool, winner = scored_pool(5)
    grid = render_grid(with_images(pool, two_tone(5)), winner)
    assert grid.shape == (1, 32 + 12 + 2 * 164, 12 + 3 * 142, 3)
    assert grid.dtype == torch.float32 and 0.0 <= grid.min() and grid.max() <= 1.0
    assert pixel(grid, 0, 0) == BACKGROUND and pixel(grid, grid.shape[2] - 1, grid.shape[1] - 1) == BACKGROUND
    # the legend's colour key: 11 px squares at y 17..27, winner, elite, other from left to right
    arr = (grid[0] * 255).round().to(torch.int64)
    xs = []
    for colour in (WINNER, ELITE, OTHER):
        mask = (arr[:32] == torch.tensor(colour)).all(-1)
        cols = mask[17:28].all(0) & ~mask[16] & ~mask[28]  # filled exactly rows 17..27
        found = cols.nonzero().flatten().tolist()
        assert len(found) == 11 and found == list(range(found[0], found[0] + 11)), (colour, found)
        xs.append(found[0])
    assert xs[0] == 6 and xs[0] < xs[1] < xs[2]
    # text beside each key square and in the title line above them
    arr = (grid[0] * 255).round()
    bright = (arr > 150).all(-1)
    assert bright[3:16, 6:200].any()
    for x in xs:
        assert bright[17:30, x + 12:x + 40].any()


def label_lines(grid, box) -> list[bool]:
    """For the cell whose thumbnail is ``box``: whether each 13 px text line below its frame has text."""
    x0, _, x1, y1 = box
    bright = ((grid[0] * 255).round() > 150).all(-1)
    top = y1 + BORDER + 1
    return [bool(bright[top + k * 13: top + (k + 1) * 13, x0 - BORDER: x1 + BORDER].any()) for k in range(6)]


def test_each_cell_has_its_label_lines():
    pool, winner = scored_pool(4)
    grid = render_grid(with_images(pool, two_tone(4)), winner)
    for box in thumbnails(grid, 4):
        # "#id g0", "seed ...", "U ...", then the two most heavily weighted scores; nothing below
        assert label_lines(grid, box) == [True] * 5 + [False]


def test_label_aspects_follow_the_weights():
    pool, _ = scored_pool(2)
    assert _label_aspects(pool) == ["sharpness", "exposure"]  # weights sharpness 2, exposure 1
    info = VerifierInfo("other-v1", "other", ("sharpness", "zeta"), "ctx")
    pool = pool.with_scores(info, {c.id: {"sharpness": 1.0, "zeta": 2.0} for c in pool.candidates},
                            {c.id: 0.0 for c in pool.candidates})
    no_weights = replace(pool, weights=None)
    shown = _label_aspects(no_weights)  # two of the scores, by their display names
    assert len(shown) == 2 and set(shown) <= {"technical.sharpness", "other.sharpness", "exposure", "zeta"}
    weighted = replace(pool, weights=(("exposure", 0.0), ("zeta", 0.5), ("other.sharpness", 3.0)))
    assert _label_aspects(weighted) == ["other.sharpness", "zeta"]  # by weight; zero weights left out
    tied = replace(pool, weights=(("zeta", 1.0), ("exposure", 1.0)))
    assert _label_aspects(tied) == ["exposure", "zeta"]  # equal weights: by name


def test_elite_ids_cover_every_round_and_the_last_selection():
    pool, winner = scored_pool(6, k_local=2)
    assert elite_ids(pool) == set(pool.rounds[0].elites) | {winner}
    assert elite_ids(replace(pool, selection=None)) == set(pool.rounds[0].elites)


def test_short_seed_and_number_format():
    assert short_seed(123456789) == "123456789"
    assert short_seed(1234567890) == "1234..890"
    assert _fmt(None) == "-" and _fmt(1.0 / 3) == "0.33" and _fmt(10) == "10.00"


def test_grey_and_rgba_pictures_are_drawn_as_rgb():
    pool, winner = scored_pool(2)
    grey = torch.full((1, 16, 24, 1), 100 / 255)
    rgba = torch.cat([two_tone(1)[0], torch.zeros(1, 16, 24, 1)], dim=-1)
    grid = render_grid(with_images(pool, [grey, rgba]), winner)
    x0, y0, x1, y1 = find_block(grid[:, 32:128, :150], (100, 100, 100))  # the first cell only (text has greys too)
    assert (x1 - x0, y1 - y0) == (128, 85)
    assert thumbnails(grid, 1)[0][2] - thumbnails(grid, 1)[0][0] == 128
def test_pruned_candidates_get_their_own_border_and_fate_in_the_report():
    from dataclasses import replace

    from eacps.search.grid import PRUNED
    from eacps.search.pool import Screen

    pool, winner = scored_pool(4)
    pruned = replace(pool.get(3), screens=(Screen(2, "chain", 4.5, False),), potential=None, elite=False)
    pool = replace(pool, candidates=pool.candidates[:3] + (pruned,), unspent=2, stopped="target potential 9")
    winner = select_elites(pool, 1)[0]
    grid = render_grid(pool.with_elites((winner,)), winner)
    frame = (grid[0] * 255).round() == torch.tensor(PRUNED, dtype=torch.float32)
    assert frame.all(-1).sum() > 4 * 40  # a border around one thumbnail (and the legend key)
    plain = (render_grid(*scored_pool(4))[0] * 255).round() == torch.tensor(PRUNED, dtype=torch.float32)
    assert not plain.all(-1).any()
    report = json.loads(report_json(pool, winner))
    assert report["candidates"][3]["fate"] == "pruned at step 2 (x0 prediction potential 4.5)"
    assert report["candidates"][0]["fate"] == "finished"
    assert report["budget"]["unspent"] == 2 and report["budget"]["stopped"] == "target potential 9"


def test_an_invalid_candidates_reason_is_wrapped_into_words_that_fit_the_cell():
    from eacps.search.grid import _wrap

    # by hand, width 9: "aaaa bbbb" is 9 (fits), "+ cccc" would be 14; then "cccc dddd", then "eeee"
    assert _wrap("aaaa bbbb cccc dddd eeee", 3, width=9) == ["aaaa bbbb", "cccc dddd", "eeee"]
    assert _wrap("aaaa bbbb cccc dddd eeee", 2, width=9) == ["aaaa bbbb", "cccc dddd"]
    assert _wrap("latent has non-finite values", 2) == ["latent has", "non-finite values"]  # 20 wide
    assert _wrap("", 2) == [""]


def test_the_first_label_line_says_winner_or_elite_and_nothing_for_the_others():
    from PIL import Image, ImageDraw, ImageFont

    pool, winner = scored_pool(4)
    grid = render_grid(with_images(pool, two_tone(4)), winner)
    bright = ((grid[0] * 255).round() > 150).all(-1).numpy()
    measure = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    font = ImageFont.load_default(size=11)  # Pillow's own font, as the grid draws with
    elites = elite_ids(pool)
    for c, (x0, _, x1, y1) in zip(pool.candidates, thumbnails(grid, 4), strict=True):
        top = y1 + BORDER + 1
        ink = np.nonzero(bright[top:top + 13, x0 - BORDER:x1 + BORDER].any(0))[0]
        tag = "  WINNER" if c.id == winner else "  elite" if c.id in elites else ""
        width = measure.textlength(f"#{c.id} g{c.generation}{tag}", font=font)
        assert width - 4 <= ink.max() + 1 <= width + 1, (c.id, tag, ink.max(), width)
