"""Issue #11 methods for the quality benchmark: adaptive stopping and screening (successive halving
on the denoising chain, and preview runs), replayed exactly from one screened pool per prompt.

    .venv/bin/python bench/quality_compute.py [--prompts 100] [--pool 32] [--shard k/n] [--out DIR]
    (any bench/quality.py option; then --report-only over the shards' records)

It runs bench/quality.py's own machinery (records, shards, summary, plot) with this method table in
place of the standard one, and best-of-N read from the screened pool (no second pool).

Per prompt, ``screened`` runs the pool once through EACPS_SeedSearchGlobal with V scoring the decoded
x0 prediction at RUNGS (prune_keep 0.99 keeps everyone) and once as a short PREVIEW_STEPS-step run of
the same seeds; E scores every final image. Because euler continues a chain exactly (tested against
a stock KSampler in tests/host/test_runner.py) and EACPS_BestOfN(n) samples the pool's first n seeds,
``replay`` gives exactly what EACPS_BestOfN with stopping/screening options returns on that prompt
(winner and sampler steps), without running every variant: NFE, wall and CPU time are the pool's,
pro-rated by sampler steps. Best-of-N reads the same pool (``pool_from_screened``).
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

# quality.py (the issue-#10 benchmark) is imported only where needed, so replay() and halving_n()
# can be tested without it.

RUNGS = (2, 5, 10)  # x0 previews recorded at these steps (chain screening)
PREVIEW_STEPS = 4  # the short separate run of "preview" screening


def replay(sp: dict, n: int, rungs: tuple[int, ...] = (), keep: float = 0.5, kind: str = "chain",
           target: float | None = None, plateau: int = 0, sub_batch: int = 4) -> tuple[int, int]:
    """(winner, sampler steps) of EACPS_BestOfN(n) with these options on this prompt, replayed from the
    screened pool ``sp`` (the same seeds, the same V scores; euler continues a chain exactly). Mirrors
    search/halving.py (keep ceil(keep * alive) >= 1, ties to the earlier candidate; survivors finish
    best preview first), search/stopping.py (checked between sub-batches) and the pool's selection
    (ties to the earlier-finished candidate)."""
    steps = sp["steps"]
    alive, cost, at = list(range(n)), 0, 0
    for r in rungs:
        if len(alive) <= 1:
            break
        u = sp["v_at"][r] if kind == "chain" else sp["v_short"]
        cost += len(alive) * (r - at if kind == "chain" else r)
        at = r if kind == "chain" else 0
        alive = sorted(alive, key=lambda i: (-u[i], i))[:max(1, math.ceil(keep * len(alive)))]
    done: list[int] = []
    for begin in range(0, len(alive), sub_batch):
        if done:
            vs = [sp["v"][i] for i in done]
            best = max(vs)
            if (target is not None and best >= target) or (plateau and len(vs) - 1 - vs.index(best) >= plateau):
                break
        piece = alive[begin:begin + sub_batch]
        cost += len(piece) * (steps - at)
        done += piece
    winner = max(done, key=lambda i: (sp["v"][i], -done.index(i)))
    return winner, cost


def replayed(name: str, paired_n: int, family: str = "compute", **options):
    """A best-of-N variant with stopping or screening, replayed from the screened pool; ``paired_n`` is the
    best-of-N it is compared with (equal NFE for the screening plans sized by ``halving_n``)."""
    from quality import Method, Outcome

    def run(bench, case) -> Outcome:
        sp = screened(bench, case)
        winner, cost = replay(sp, **options)
        share = cost / sp["steps_run"]
        return Outcome(sp["e"][winner], sp["nfe"] * share, sp["wall_s"] * share, sp["cpu_s"] * share,
                       {"winner": winner, "sampler_steps": cost})

    return Method(name, family, paired_n, run, {"replayed_from_screened_pool": True, **options})


def halving_n(budget: int, steps: int, rungs: tuple[int, ...], keep: float, kind: str = "chain") -> int:
    """The most candidates a screening plan can start within ``budget`` full samples."""
    def cost(n: int) -> int:
        alive, total, at = n, 0, 0
        for r in rungs:
            if alive <= 1:
                break
            total += alive * (r - at if kind == "chain" else r)
            at = r if kind == "chain" else 0
            alive = max(1, math.ceil(keep * alive))
        return total + alive * (steps - at)

    n = 1
    while cost(n + 1) <= budget * steps:
        n += 1
    return n


def compute_methods(pool: int, steps: int, budget: int = 20, sub_batch: int = 4, eacps_runs: bool = True) -> list:
    """The full table: best-of-N (from the screened pool); adaptive stopping at best-of-``budget``;
    screening plans at equal NFE (chain at several k and keep fractions, preview runs) and at half
    of it; their combinations with stopping (all replayed); and, when ``eacps_runs``, real runs of
    EACPS_Search: the pack's variants (quality.standard_methods) and EACPS with pruning or stopping."""
    from quality import best_of_n, eacps, eacps_variants

    b = budget
    out = [best_of_n(n) for n in (1, 2, 4, 8, 10, 12, 16, 20, 24, 32, 40, 48, 64) if n <= pool]
    stop = {"sub_batch": sub_batch}
    for t in (5.0, 6.0, 7.0, 8.0):
        out.append(replayed(f"bon{b}_stop_at_{t:g}", b, n=b, target=t, **stop))
    for k in (4, 8):
        out.append(replayed(f"bon{b}_plateau_{k}", b, n=b, plateau=k, **stop))
    plans = [((5,), 0.25, "chain"), ((10,), 0.5, "chain"), ((2,), 0.25, "chain"), ((5, 10), 0.5, "chain"),
             ((10,), 0.25, "chain"), ((PREVIEW_STEPS,), 0.25, "preview"), ((PREVIEW_STEPS,), 0.5, "preview")]
    for budget_now in sorted({b, max(1, b // 2)}, reverse=True):
        for rungs, keep, kind in plans:
            if any(r >= steps for r in rungs) or (kind == "chain" and not set(rungs) <= set(RUNGS)):
                continue
            n = min(pool, halving_n(budget_now, steps, rungs, keep, kind))
            tag = f"{kind}{'+'.join(map(str, rungs))}_keep{keep:g}"
            out.append(replayed(f"bon_{tag}_n{n}", budget_now, n=n, rungs=rungs, keep=keep, kind=kind))
            out.append(replayed(f"bon_{tag}_n{n}_stop_at_7", budget_now, n=n, rungs=rungs, keep=keep, kind=kind,
                                target=7.0, **stop))
    if 10 < steps:
        out.append(replayed(f"bon{b}_chain10_keep0.5", b, n=b, rungs=(10,), keep=0.5))  # fewer NFE, same N
    out = list({m.name: m for m in out}.values())  # a plan that fits both budgets the same way runs once
    if eacps_runs and steps > 10 and pool >= 20:
        out += eacps_variants()
        # EACPS with both stages pruned at step 10 (keep a quarter): 16 * 10 + 4 * 10 sampler steps per
        # stage, 400 in all = best-of-20's
        prune = {"prune_steps": "10", "prune_keep": 0.25}
        out.append(eacps(16, 2, 8, "slerp", 0.6, paired_n=20, tag="_chain10_keep0.25", **prune))
        out.append(eacps(16, 4, 4, "slerp", 0.6, paired_n=20, tag="_chain10_keep0.25", **prune))
        out.append(eacps(8, 3, 4, "slerp", 0.6, paired_n=20, tag="_stop_at_7", stop_at_potential=7.0))
    return out


def confirm_methods(pool: int) -> list:
    """Real runs (not replays) of the configuration chosen as EACPS_BestOfN's default, and of EACPS
    with the same pruning, beside best-of-N read from the pool (``--confirm``)."""
    from quality import best_of_n, best_of_n_node, eacps

    prune = {"prune_steps": "5, 10", "prune_keep": 0.5}
    return [*(best_of_n(n) for n in (1, 10, 20) if n <= pool),
            # 40 * 5 + 20 * 5 + 10 * 10 = 400 sampler steps = best-of-20's
            best_of_n_node(40, paired_n=20, tag="_chain5+10_keep0.5", **prune),
            # global 16 * 5 + 8 * 5 + 4 * 10 = 160, local 24 * 5 + 12 * 5 + 6 * 10 = 240: 400 in all
            eacps(16, 3, 8, "slerp", 0.6, paired_n=20, tag="_chain5+10_keep0.5", **prune)]


def screened(bench, case) -> dict:
    """One pool per prompt for the issue-#11 replays: ``pool_size`` plain seeds (the case's seed
    first, as EACPS_BestOfN draws them) through EACPS_SeedSearchGlobal with V scoring the x0
    prediction at RUNGS (prune_keep 0.99 keeps every candidate: ceil(0.99 n) = n), and the same
    seeds as a short PREVIEW_STEPS-step run scored by V; E of every final image."""
    import torch
    from quality import _capture

    if not hasattr(bench, "screened_pools"):
        bench.screened_pools = {}
    if case.index not in bench.screened_pools:
        steps = bench.spec.steps
        rungs = [r for r in RUNGS if r < steps]
        g = bench.base(case.prompt)
        g["pool"] = {"class_type": "EACPS_SeedSearchGlobal",
                     "inputs": {**bench.sampling(case), "k_global": bench.pool_size,
                                "prune_steps": ", ".join(map(str, rungs)), "prune_keep": 0.99,
                                "screen_verifier": ["judge_v", 0], "screen_weights": "judge_v=1.0",
                                "screen_prompt": case.prompt}}
        short = PREVIEW_STEPS < steps
        if short:
            g["search"] = {"class_type": "EACPS_SeedSearchGlobal",
                           "inputs": {**bench.sampling(case), "k_global": bench.pool_size, "steps": PREVIEW_STEPS}}
            g["search_v"] = {"class_type": "EACPS_VerifierScore",
                             "inputs": {"candidates": ["search", 0], "verifier": ["judge_v", 0],
                                        "prompt": case.prompt}}
            g["cap_short"] = _capture(["search_v", 0], "short")
        g["cap"] = _capture(["pool", 0], "screened")
        wall, nfe, cpu = bench.run(g)
        pool = bench.captured.pop("screened")
        order = {seed: i for i, seed in enumerate(_seeds(bench, case))}
        cands = sorted(pool.candidates, key=lambda c: order[c.seed])  # back to proposal order
        if short:
            short_pool = bench.captured.pop("short")
            v_short = [next(v for _, a, v in c.scores if a == "judge_v") for c in short_pool.candidates]
        else:
            v_short = None
        v = [c.potential for c in cands]
        v_at = {r: [next(x.potential for x in c.screens if x.step == r) for c in cands] for r in rungs}
        e = bench.e_of(torch.cat([c.image for c in cands]), case.prompt)
        steps_run = bench.pool_size * steps + (bench.pool_size * PREVIEW_STEPS if short else 0)
        bench.screened_pools[case.index] = {"v": v, "v_at": v_at, "v_short": v_short, "e": e, "nfe": nfe,
                                      "wall_s": wall, "cpu_s": cpu, "steps": steps, "steps_run": steps_run,
                                      "seeds": [c.seed for c in cands]}
    return bench.screened_pools[case.index]

def _seeds(bench, case) -> list[int]:
    strategy = bench.comfy.pack_module("search.strategy")
    props = strategy.GlobalExploration(bench.pool_size, case.seed, strategy.stage_rng(case.seed, 0)).ask()
    return [p.recipe.seed for p in props]



def pool_from_screened(bench, case) -> dict:
    """The best-of-N pool (bench.pool's format) from the screened pool: the same candidates; NFE,
    wall and CPU time are the plain full runs' share."""
    sp = screened(bench, case)
    share = bench.pool_size * sp["steps"] / sp["steps_run"]
    return {"v": sp["v"], "e": sp["e"], "nfe": sp["nfe"] * share, "wall_s": sp["wall_s"] * share,
            "cpu_s": sp["cpu_s"] * share, "seeds": sp["seeds"], "screened_nfe": sp["nfe"],
            "screened_wall_s": sp["wall_s"]}


def main(argv: list[str] | None = None) -> int:
    """bench/quality.py's main with this table and best-of-N read from the screened pool."""
    argv = sys.argv[1:] if argv is None else argv
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import quality

    steps = int(argv[argv.index("--steps") + 1]) if "--steps" in argv else (4 if "--quick" in argv else 20)
    quality.COMMAND = ".venv/bin/python bench/quality_compute.py"
    if "--confirm" in argv:
        argv = [a for a in argv if a != "--confirm"]
        quality.standard_methods = confirm_methods
    else:
        quality.standard_methods = lambda pool: compute_methods(pool, steps, budget=min(20, pool))
    quality.quick_methods = lambda pool: compute_methods(pool, steps, budget=min(20, pool), sub_batch=2,
                                                         eacps_runs=False)
    plain_pool = quality.Bench.pool

    def pool(self, case):
        if case.index not in self._pools:
            self._pools[case.index] = pool_from_screened(self, case)
        return plain_pool(self, case)

    quality.Bench.pool = pool
    return quality.main(argv)


if __name__ == "__main__":
    sys.exit(main())
