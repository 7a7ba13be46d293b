"""The JSON report of a search: every candidate (its fate: finished, or pruned at which step with
its preview potential), the budget (finished, pruned, unspent candidates, why it stopped) and what
it cost (search/budget.py's Ledger: NFE, calls, steps, decodes, verifier calls, seconds)."""

from __future__ import annotations

import json

from .pool import Pool


def build_report(pool: Pool, winner: int | None, setup: dict | None = None, stopped: str | None = None) -> dict:
    """The report of ``pool``. ``winner`` None and ``stopped`` (the reason) for the partial report of a
    search that ended early: the candidates sampled so far, no winner."""
    names = pool.display_names()
    report = {
        "pool_id": pool.pool_id,
        "winner": winner,
        "winner_seed": pool.get(winner).seed if winner is not None else None,
        "budget": pool.budget(),
        "weights": dict(pool.weights) if pool.weights is not None else None,
        "scores": {name: {"verifier": ident, "aspect": asp} for (ident, asp), name in names.items()},
        "elites": list(pool.selection.ids) if pool.selection else [],
        "invalid": {str(c.id): c.invalid for c in pool.candidates if not c.valid},
        "prompt_truncated": {v.identity: v.note for v in pool.verifiers if v.note},
        "setup": setup or {},
        "compute": pool.ledger.to_dict(),
        "candidates": [
            {
                "id": c.id,
                "seed": c.seed,
                "recipe": c.recipe.to_dict(),
                "generation": c.generation,
                "parent": c.parent,
                "scores": {names[(i, a)]: v for i, a, v in c.scores},
                "potential": c.potential,
                "elite": c.elite,
                "invalid": c.invalid,
                "timings": {k: v for k, v in c.timings},
                "nfe": c.nfe,
                "ran_on": c.ran_on,
                "fate": _fate(c),
                "screens": [{"step": s.step, "kind": s.kind, "preview_potential": s.potential, "kept": s.kept}
                            for s in c.screens],
            }
            for c in pool.candidates
        ],
    }
    if stopped is not None:
        report["stopped"] = stopped
    return report


def _fate(c) -> str:
    if c.pruned:
        screen = next(s for s in c.screens if not s.kept)
        what = "x0 prediction" if screen.kind == "chain" else "preview run"
        value = "invalid" if screen.potential is None else f"{screen.potential:.4g}"
        return f"pruned at step {screen.step} ({what} potential {value})"
    return "finished"


def report_json(pool: Pool, winner: int, setup: dict | None = None) -> str:
    return json.dumps(build_report(pool, winner, setup), indent=1, allow_nan=False)


def winner_summary(report: dict) -> dict:
    """What a saved image carries about its search (PNG text chunk ``eacps``): the winner's seed and
    noise recipe, its scores and potential, the weights, the sampling setup and the budget. Not the
    whole report: the other candidates stay in the JSON file beside the image."""
    try:
        winner = next(c for c in report["candidates"] if c["id"] == report["winner"])
        return {
            "winner": winner["id"],
            "seed": winner["seed"],
            "recipe": winner["recipe"],
            "generation": winner["generation"],
            "potential": winner["potential"],
            "scores": winner["scores"],
            "weights": report["weights"],
            "setup": report["setup"],
            "budget": report["budget"]["formula"],
        }
    except (KeyError, TypeError, StopIteration) as e:
        raise ValueError(
            f"this is not an EACPS report (missing {e}); connect the 'report' output of EACPS Elite Select, "
            "EACPS Search or EACPS Best of N"
        ) from None
