"""The candidate grid and the winner summary, without a host."""

import json

import numpy as np
import pytest
import torch

from eacps.search.grid import BORDER, ELITE, OTHER, WINNER, cell_origin, layout, render_grid, short_seed
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


def test_grid_grows_with_the_number_of_candidates():
    shapes = [render_grid(*scored_pool(n)).shape for n in (1, 4, 9, 20)]
    assert all(s[0] == 1 and s[3] == 3 for s in shapes)
    heights = [s[1] for s in shapes]
    widths = [s[2] for s in shapes]
    assert heights == sorted(heights) and widths == sorted(widths) and heights[-1] > heights[0]
    cols, rows, cell_w, cell_h = layout(20, (32, 48))
    assert (cols, rows) == (5, 4)
    assert shapes[-1][2] >= cols * cell_w and shapes[-1][1] >= rows * cell_h


def test_winner_and_elites_are_framed_in_their_colours():
    pool, winner = scored_pool(6, k_local=2)
    grid = render_grid(pool, winner)
    elites = set(pool.rounds[0].elites)
    assert winner in elites or pool.get(winner).generation == 1
    n = len(pool)
    for c in pool.candidates:
        x, y = cell_origin(c.id, n, (32, 48))
        want = WINNER if c.id == winner else ELITE if c.id in elites else OTHER
        # top-left corner of the border, and a pixel on the left border half way down
        assert pixel(grid, x + 1, y + 1) == want, c.id
        assert pixel(grid, x + BORDER // 2, y + 20) == want, c.id
    # the thumbnail itself sits inside the border
    x, y = cell_origin(winner, n, (32, 48))
    assert pixel(grid, x + BORDER + 10, y + BORDER + 10) not in (WINNER, ELITE, OTHER)


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
