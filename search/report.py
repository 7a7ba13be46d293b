"""The JSON report of a search: every candidate and the budget."""

from __future__ import annotations

import json

from .pool import Pool


def build_report(pool: Pool, winner: int, setup: dict | None = None) -> dict:
    names = pool.display_names()
    return {
        "pool_id": pool.pool_id,
        "winner": winner,
        "winner_seed": pool.get(winner).seed,
        "budget": pool.budget(),
        "weights": dict(pool.weights) if pool.weights is not None else None,
        "scores": {name: {"verifier": ident, "aspect": asp} for (ident, asp), name in names.items()},
        "elites": list(pool.selection.ids) if pool.selection else [],
        "setup": setup or {},
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
                "timings": {k: v for k, v in c.timings},
            }
            for c in pool.candidates
        ],
    }


def report_json(pool: Pool, winner: int, setup: dict | None = None) -> str:
    return json.dumps(build_report(pool, winner, setup), indent=1, allow_nan=False)
