"""Quality benchmark (issue #10): held-out E against compute on the lab world.

    ./bench/quality.sh                 # standard run -> bench/results/quality-cpu-<n>core/
    ./bench/quality.sh --quick         # CI check of the machinery (few prompts, small N; no figures)
    ./bench/quality.sh --help

Every method runs the pack's real search code through a ComfyUI booted in this process
(``InProcessComfy.run`` of API-format prompts): ``EACPS_SeedSearchGlobal`` + ``EACPS_VerifierScore``
for the best-of-N pool, ``EACPS_Search`` for the EACPS variants, with the lab's search verifier V
(``EACPSLab_LoadJudge`` which=V, weights ``judge_v=1.0``). The held-out evaluator E
(``EACPSLab_LoadJudge`` which=E) only scores each method's final image: pass 1 / fail 0.

Compute is counted in model evaluations (NFE), measured: the model passes through
``EACPSLab_CountNFE`` (ComfyUI's UNet function wrapper, batch rows per call), so a euler step of
one candidate with CFG counts 2.

Best-of-N for N < pool size is the standard unbiased estimator from one pool of ``--pool``
candidates per prompt (the expected E of the V-best of N candidates drawn without replacement from
the pool: the candidate ranked i-th of n by V wins with probability C(i-1, N-1) / C(n, N)); its NFE
and wall time are the pool's, pro-rated to N. Win/tie/loss counts compare against the actual
best-of-N pick: the V-best of the pool's first N candidates, which is exactly what
``EACPS_BestOfN(n=N)`` with the same seed returns (its seeds are the pool's first N).

Adding a method: append a ``Method`` to the table (``standard_methods`` / ``quick_methods``);
its ``run(bench, case)`` samples one prompt and returns an ``Outcome`` (E, NFE actually spent,
wall seconds). Methods with the same ``n`` as a best-of-N entry are compared with it, paired.
"""

from __future__ import annotations

import argparse
import datetime
import fnmatch
import json
import logging
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import comfyui_path, make_base_dir  # noqa: E402

NFE_KEY = "quality"
COMMAND = "./bench/quality.sh"  # how the results say they were made (quality_compute.py sets its own)
SAMPLER_NODES = ("pool", "search")


# --------------------------------------------------------------------------------- the world


@dataclass(frozen=True)
class ModelSpec:
    """The text-to-image model a run samples, as ComfyUI nodes, and its sampling settings."""

    name: str
    model: dict
    vae: dict
    conditioning: Callable[[str], dict]
    steps: int
    cfg: float
    sampler_name: str = "euler"
    scheduler: str = "normal"

    def describe(self) -> dict:
        return {"name": self.name, "model": self.model, "vae": self.vae, "conditioning": self.conditioning("<text>"),
                "steps": self.steps, "cfg": self.cfg, "sampler_name": self.sampler_name, "scheduler": self.scheduler,
                "size": "64x64 (latent 4x8x8)"}


def tiny_spec(steps: int, cfg: float | None) -> ModelSpec:
    """The test pack's random-weight tiny model: only to check the machinery (E is ~0 on noise)."""
    return ModelSpec("tiny-random", {"class_type": "EACPSTest_TinyModel", "inputs": {"weights_seed": 0}},
                     {"class_type": "EACPSTest_TinyVAE", "inputs": {"weights_seed": 0}},
                     lambda text: {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": text}},
                     steps=steps, cfg=5.0 if cfg is None else cfg)


def lab_spec(steps: int, cfg: float | None) -> ModelSpec:
    """The lab world's trained model (lab/comfy_lab_pack: EACPSLab_LoadModel / LoadVAE / TextEncode)."""
    return ModelSpec("lab-world", {"class_type": "EACPSLab_LoadModel", "inputs": {}},
                     {"class_type": "EACPSLab_LoadVAE", "inputs": {}},
                     lambda text: {"class_type": "EACPSLab_TextEncode", "inputs": {"text": text}},
                     steps=steps, cfg=5.0 if cfg is None else cfg)


SPECS = {"lab": lab_spec, "tiny": tiny_spec}


@dataclass(frozen=True)
class Case:
    index: int
    prompt: str
    seed: int


# --------------------------------------------------------------------------------- methods


@dataclass(frozen=True)
class Outcome:
    """What one method did on one prompt: E of its final image (1 pass / 0 fail, or an expectation
    for the pool estimator), NFE spent, wall seconds, and anything else worth keeping."""

    e: float
    nfe: float
    wall_s: float
    cpu_s: float  # process CPU seconds (one torch thread: about the wall time on an idle core)
    detail: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    family: str  # "best_of_n", "eacps", ... (the plot draws best_of_n as the reference curve)
    n: int  # candidates sampled: methods with equal n are compared at equal compute
    run: Callable[[Bench, Case], Outcome]
    settings: dict = field(default_factory=dict)


def best_of_n_expectation(v: np.ndarray, e: np.ndarray, n: int) -> float:
    """Expected E of the V-best of ``n`` candidates drawn without replacement from the pool.

    Ranks by V ascending, ties broken towards the lower candidate id (as the pack's selection);
    the candidate of rank i (1-based) of m is the best of a random n-subset with probability
    C(i-1, n-1) / C(m, n) (the standard unbiased best-of-n estimator)."""
    m = len(v)
    if not 1 <= n <= m:
        raise ValueError(f"best-of-{n} from a pool of {m}")
    order = sorted(range(m), key=lambda i: (v[i], -i))
    weights = np.array([math.comb(rank, n - 1) for rank in range(m)], dtype=np.float64) / math.comb(m, n)
    return float(np.dot(weights, np.asarray(e, dtype=np.float64)[order]))


def best_of_n(n: int) -> Method:
    def run(bench: Bench, case: Case) -> Outcome:
        pool = bench.pool(case)
        m = len(pool["v"])
        v, e = np.array(pool["v"]), np.array(pool["e"])
        prefix = int(max(range(n), key=lambda i: (v[i], -i)))  # EACPS_BestOfN(n)'s pick: V-best of the first n
        return Outcome(best_of_n_expectation(v, e, n), pool["nfe"] * n / m, pool["wall_s"] * n / m,
                       pool["cpu_s"] * n / m, {"run_e": float(e[prefix]), "candidate0_e": float(e[0])})

    return Method(f"best_of_{n}", "best_of_n", n, run, {"n": n, "estimated_from_pool": True})


def eacps(k_global: int, m: int, k_local: int, mode: str = "slerp", strength: float = 0.6, generations: int = 1,
          anneal: float = 0.5, paired_n: int | None = None, tag: str = "", **compute) -> Method:
    """EACPS_Search with these settings. ``compute``: its compute options (prune_steps, prune_keep,
    stop_at_potential, ...; named in ``tag``); ``paired_n``: the best-of-N it costs as much as
    (default: its candidate count, right when every candidate runs all its steps)."""
    settings = {"k_global": k_global, "m": m, "k_local": k_local, "mode": mode, "strength": strength,
                "generations": generations, "anneal": anneal, **compute}
    n = paired_n or k_global + generations * m * k_local
    radius = "" if mode == "seed_offset" else f"{strength:g}"
    name = f"eacps_{mode}{radius}_{k_global}+{generations}x{m}x{k_local}{tag}"

    def run(bench: Bench, case: Case) -> Outcome:
        return bench.search(case, settings)

    return Method(name, "eacps", n, run, settings)


def best_of_n_node(n: int, paired_n: int | None = None, tag: str = "", **compute) -> Method:
    """A real run of EACPS_BestOfN(n) with its compute options (``compute``, named in ``tag``);
    ``paired_n``: the best-of-N it costs as much as (default n)."""
    settings = {"n": n, **compute}

    def run(bench: Bench, case: Case) -> Outcome:
        return bench.search(case, settings, node="EACPS_BestOfN")

    return Method(f"best_of_n_node_{n}{tag}", "best_of_n_node", paired_n or n, run, settings)


def standard_methods(pool: int) -> list[Method]:
    ns = [n for n in (1, 2, 4, 8, 12, 16, 20, 24, 32, 40, 48, 64) if n <= pool]
    return [*(best_of_n(n) for n in ns), *eacps_variants()]


def eacps_variants() -> list[Method]:
    """The EACPS_Search variants the pack offers: modes, strengths, generations, a larger N."""
    return [
        eacps(8, 3, 4, "slerp", 0.6),  # the pack's defaults
        eacps(8, 3, 4, "slerp", 0.3),
        eacps(8, 3, 4, "slerp", 0.9),
        eacps(8, 3, 4, "sphere", 0.6),
        eacps(8, 3, 4, "seed_offset"),
        eacps(8, 3, 2, "slerp", 0.6, generations=2),  # 8 + 2 * 3 * 2 = 20
        eacps(16, 3, 8, "slerp", 0.6),  # N = 40
    ]


def quick_methods(pool: int) -> list[Method]:
    return [*(best_of_n(n) for n in range(1, pool + 1)), eacps(2, 1, 2, "slerp", 0.6), eacps(2, 1, 1, "sphere", 0.6,
                                                                                           generations=2)]


# --------------------------------------------------------------------------------- running


def _capture(source: list, key: str) -> dict:
    return {"class_type": "EACPSTest_Capture", "inputs": {"value": source, "key": key}}


class Bench:
    """One in-process ComfyUI, the model spec, the judges, and the per-prompt pool cache."""

    def __init__(self, comfy: InProcessComfy, spec: ModelSpec, pool_size: int, max_sub_batch: int):
        self.comfy, self.spec, self.pool_size, self.max_sub_batch = comfy, spec, pool_size, max_sub_batch
        mappings = comfy.nodes.NODE_CLASS_MAPPINGS
        self.captured = sys.modules[mappings["EACPSTest_Capture"].__module__].CAPTURED
        self.counts = sys.modules[mappings["EACPSLab_CountNFE"].__module__].COUNTS
        judge_module = sys.modules[mappings["EACPSLab_LoadJudge"].__module__]
        self.world = judge_module.judges.world
        comfy.run({"judge_e": {"class_type": "EACPSLab_LoadJudge", "inputs": {"which": "E"}},
                   "cap": _capture(["judge_e", 0], "judge_e")})
        self.judge_e = self.captured["judge_e"]  # loaded through its node, as a user would
        self._pools: dict[int, dict] = {}

    def base(self, text: str) -> dict:
        s = self.spec
        return {
            "model_raw": s.model,
            "model": {"class_type": "EACPSLab_CountNFE", "inputs": {"model": ["model_raw", 0], "key": NFE_KEY}},
            "pos": s.conditioning(text),
            "neg": s.conditioning(""),
            "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
            "vae": s.vae,
            "judge_v": {"class_type": "EACPSLab_LoadJudge", "inputs": {"which": "V"}},
        }

    def sampling(self, case: Case) -> dict:
        s = self.spec
        return {"model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
                "vae": ["vae", 0], "seed": case.seed, "steps": s.steps, "cfg": s.cfg, "sampler_name": s.sampler_name,
                "scheduler": s.scheduler, "denoise": 1.0, "max_sub_batch": self.max_sub_batch}

    def run(self, graph: dict) -> tuple[float, int, float]:
        """Run a prompt; (wall seconds, NFE counted, process CPU seconds: on a shared machine these
        estimate the wall time the run would take alone with one thread). Raises if a sampler node
        came from the cache."""
        self.counts[NFE_KEY] = 0
        t0, c0 = time.perf_counter(), time.process_time()
        result = self.comfy.run(graph)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        cached = {n for kind, data in result.status_messages if kind == "execution_cached" for n in data.get("nodes", [])}
        if cached & set(SAMPLER_NODES):
            raise RuntimeError(f"ComfyUI served {sorted(cached & set(SAMPLER_NODES))} from its cache: the run is void")
        nfe = self.counts[NFE_KEY]
        if nfe <= 0:
            raise RuntimeError("no model evaluation was counted: is EACPSLab_CountNFE between the model and the sampler?")
        return wall, nfe, cpu

    def e_of(self, images: torch.Tensor, prompt: str) -> list[float]:
        """E's verdicts (1 pass / 0 fail) for IMAGE [B, H, W, 3]."""
        scores = self.judge_e.score(images, prompt, None).scores[self.judge_e.aspects[0]]
        return [float(s) / 10.0 for s in scores]

    def pool(self, case: Case) -> dict:
        """The best-of-N pool of this prompt: ``pool_size`` plain seeds (the first is the case's seed),
        sampled by SeedSearchGlobal and scored by V through VerifierScore; then E of each."""
        if case.index not in self._pools:
            g = self.base(case.prompt)
            g["pool"] = {"class_type": "EACPS_SeedSearchGlobal", "inputs": {**self.sampling(case), "k_global": self.pool_size}}
            g["pool_v"] = {"class_type": "EACPS_VerifierScore",
                           "inputs": {"candidates": ["pool", 0], "verifier": ["judge_v", 0], "prompt": case.prompt}}
            g["cap"] = _capture(["pool_v", 0], "pool")
            wall, nfe, cpu = self.run(g)
            pool = self.captured.pop("pool")
            v = [next(val for _, aspect, val in c.scores if aspect == "judge_v") for c in pool.candidates]
            e = self.e_of(torch.cat([c.image for c in pool.candidates]), case.prompt)
            self._pools[case.index] = {"v": v, "e": e, "nfe": nfe, "wall_s": wall, "cpu_s": cpu,
                                       "seeds": [c.seed for c in pool.candidates]}
        return self._pools[case.index]

    def search(self, case: Case, settings: dict, node: str = "EACPS_Search") -> Outcome:
        g = self.base(case.prompt)
        g["search"] = {"class_type": node,
                       "inputs": {**self.sampling(case), "verifier_1": ["judge_v", 0], "weights": "judge_v=1.0",
                                  "prompt": case.prompt, **settings}}
        g["cap_image"] = _capture(["search", 0], "image")
        g["cap_report"] = _capture(["search", 5], "report")
        wall, nfe, cpu = self.run(g)
        report = json.loads(self.captured.pop("report"))
        e = self.e_of(self.captured.pop("image"), case.prompt)[0]
        return Outcome(e, nfe, wall, cpu, {"winner": report["winner"], "budget": report["budget"]})


# --------------------------------------------------------------------------------- statistics


def _mean_se(x: list[float]) -> tuple[float, float]:
    a = np.asarray(x, dtype=np.float64)
    se = float(a.std(ddof=1) / math.sqrt(len(a))) if len(a) > 1 else float("nan")
    return float(a.mean()), se


REFERENCE = "best_of_20"  # every other method is also compared with it (e.g. at half its NFE)


def summarise(methods: list[Method], records: list[dict]) -> dict:
    """Per method: mean E and its SE over prompts, mean NFE / wall / CPU seconds, and for methods
    with the same N as a best-of-N entry the paired difference against it (mean, SE) and win / tie /
    loss against the actual best-of-N pick. ``records``: one per prompt (see ``run_case``)."""
    bon = {m.n: m.name for m in methods if m.family == "best_of_n"}
    rows = {}
    for m in methods:
        out = [r["outcomes"][m.name] for r in records]
        mean, se = _mean_se([o["e"] for o in out])
        row = {"family": m.family, "n": m.n, "settings": m.settings, "mean_e": mean, "se_e": se,
               "mean_nfe": float(np.mean([o["nfe"] for o in out])),
               "mean_wall_s": float(np.mean([o["wall_s"] for o in out])),
               "mean_cpu_s": float(np.mean([o["cpu_s"] for o in out])), "prompts": len(out)}
        if m.family != "best_of_n" and m.n in bon:
            ref = [r["outcomes"][bon[m.n]] for r in records]
            d_mean, d_se = _mean_se([o["e"] - b["e"] for o, b in zip(out, ref, strict=True)])
            runs = [(o["e"], b["run_e"]) for o, b in zip(out, ref, strict=True)]
            row["vs_best_of_n"] = {
                "baseline": bon[m.n], "baseline_mean_nfe": float(np.mean([b["nfe"] for b in ref])),
                "paired_diff": d_mean, "paired_diff_se": d_se,
                "win": sum(a > b for a, b in runs), "tie": sum(a == b for a, b in runs),
                "loss": sum(a < b for a, b in runs),
            }
        if m.family != "best_of_n" and REFERENCE in {r for r in bon.values()}:
            ref = [r["outcomes"][REFERENCE] for r in records]
            d_mean, d_se = _mean_se([o["e"] - b["e"] for o, b in zip(out, ref, strict=True)])
            row["vs_reference"] = {"baseline": REFERENCE, "paired_diff": d_mean, "paired_diff_se": d_se}
        rows[m.name] = row
    if "best_of_1" in rows:
        rows["best_of_1"]["candidate0_mean_e"] = float(np.mean([r["outcomes"]["best_of_1"]["candidate0_e"]
                                                                for r in records]))
    return rows


def run_case(bench: Bench, methods: list[Method], case: Case) -> dict:
    """Every method on one prompt -> a JSON-able record (its outcomes and its best-of-N pool)."""
    outcomes = {}
    for m in methods:
        o = m.run(bench, case)
        outcomes[m.name] = {"e": o.e, "nfe": o.nfe, "wall_s": round(o.wall_s, 4), "cpu_s": round(o.cpu_s, 4),
                            **o.detail}
    return {"index": case.index, "prompt": case.prompt, "seed": case.seed, "outcomes": outcomes,
            "pool": bench._pools.pop(case.index, None)}


# --------------------------------------------------------------------------------- output


def _world():
    """lab/world.py (prompt lists only) without booting ComfyUI: the copy the lab pack loads, if
    it is loaded, else the file itself."""
    if "eacps_lab_world" in sys.modules:
        return sys.modules["eacps_lab_world"]
    import importlib.util

    spec = importlib.util.spec_from_file_location("eacps_lab_world", REPO / "lab" / "world.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def meta(argv: list[str], threads: int) -> dict:
    if str(comfyui_path()) not in sys.path:
        sys.path.append(str(comfyui_path()))
    import comfyui_version  # ComfyUI's own version module (a plain file in its root)

    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {"device": f"CPU ({platform.machine()}, {os.cpu_count()} cores)", "cpu_count": os.cpu_count(),
            "torch_threads": threads, "torch": torch.__version__, "comfyui": comfyui_version.__version__,
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "git_commit": commit, "command": f"{COMMAND} " + " ".join(argv)}


def markdown(results: dict) -> str:
    m, s, rows = results["meta"], results["settings"], results["methods"]
    spec = s["model"]
    command = f"`{m['command']}`"
    if "--report-only" in m["command"]:
        command = (f"records by `{m['command'].replace(' --report-only', '')} --shard K/{s['shards']}` for K = 0 .. "
                   f"{s['shards'] - 1} (one process each), this report by {command}")
    lines = [
        "# EACPS quality benchmark (lab world)", "",
        f"Command: {command} (commit {m['git_commit']}, {m['date']}, {m['device']}, torch "
        f"{m['torch']} with {m['torch_threads']} thread(s), ComfyUI {m['comfyui']}).", "",
        f"{s['prompts']} held-out prompts (`world.benchmark_prompts()`, never seen by either judge), one seed each "
        f"(seed = {s['seed_base']} + prompt index); model `{spec['name']}`, {spec['sampler_name']} / "
        f"{spec['scheduler']}, {spec['steps']} steps, cfg {spec['cfg']}. Search verifier V (`judge_v=1.0`); "
        "score = held-out evaluator E of the final image (1 pass / 0 fail). NFE counted by `EACPSLab_CountNFE`.", "",
        f"Best-of-N: the unbiased estimator from one pool of {s['pool']} candidates per prompt (V-best of N drawn "
        "without replacement); its NFE and wall time are the pool's, pro-rated. W/T/L: against the actual "
        "best-of-N pick (V-best of the pool's first N seeds = `EACPS_BestOfN(n=N)` at the same seed).", "",
        f"| method | N | NFE / prompt | mean E | SE | paired diff vs best-of-N | SE | W/T/L | diff vs {REFERENCE} "
        "(SE) | wall s / prompt | CPU s / prompt |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        vs, ref = r.get("vs_best_of_n"), r.get("vs_reference")
        diff = f"{vs['paired_diff']:+.3f} | {vs['paired_diff_se']:.3f} | {vs['win']}/{vs['tie']}/{vs['loss']}" if vs \
            else "| |"
        to_ref = f"{ref['paired_diff']:+.3f} ({ref['paired_diff_se']:.3f})" if ref else ""
        lines.append(f"| {name} | {r['n']} | {r['mean_nfe']:.0f} | {r['mean_e']:.3f} | {r['se_e']:.3f} | {diff} | "
                     f"{to_ref} | {r['mean_wall_s']:.2f} | {r['mean_cpu_s']:.2f} |")
    b1 = rows.get("best_of_1", {})
    if "candidate0_mean_e" in b1:
        lines += ["", f"One sample: {b1['mean_e']:.3f} (pool mean); candidate 0 alone (the plain KSampler at the "
                      f"case's seed): {b1['candidate0_mean_e']:.3f}."]
    lines += ["", f"Total: {results['total_wall_s']:.0f} s wall, {results['total_cpu_s']:.0f} s CPU (sum over "
                  f"{results['settings']['shards']} process(es); wall time on a shared machine depends on its load, "
                  "CPU time estimates the wall time alone with one thread per process).", ""]
    return "\n".join(lines)


def plot(results: dict, path: Path) -> None:
    """E against NFE: the best-of-N curve (+- 1 SE band) and every other method as a marker of its
    family (one legend entry per family; the table names them)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["methods"]
    fig, ax = plt.subplots(figsize=(9, 5.5), dpi=110)
    bon = sorted((r for r in rows.values() if r["family"] == "best_of_n"), key=lambda r: r["n"])
    x = np.array([r["mean_nfe"] for r in bon])
    y = np.array([r["mean_e"] for r in bon])
    se = np.array([r["se_e"] for r in bon])
    ax.plot(x, y, "o-", color="black", label="best-of-N (pool estimator)")
    ax.fill_between(x, y - se, y + se, color="grey", alpha=0.25, linewidth=0)
    others = [(name, r) for name, r in rows.items() if r["family"] != "best_of_n"]
    families = sorted({r["family"] for _, r in others})
    styles = dict(zip(families, zip("s^Dvp", plt.cm.tab10.colors, strict=False), strict=False))
    for fam in families:
        pts = [r for _, r in others if r["family"] == fam]
        marker, colour = styles[fam]
        ax.scatter([r["mean_nfe"] for r in pts], [r["mean_e"] for r in pts], marker=marker, color=colour, s=28,
                   alpha=0.8, label=f"{fam} ({len(pts)} methods)", zorder=3)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("model evaluations (NFE) per prompt, measured")
    ax.set_ylabel("held-out E (fraction passed), +- 1 SE for best-of-N")
    ax.set_title(f"Lab world, {results['settings']['prompts']} held-out prompts")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def write_outputs(results: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / "results.md").write_text(markdown(results))
    plot(results, out_dir / "e_vs_nfe.png")


# --------------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 prompts, pool 4, N <= 4, 4 steps: checks the machinery")
    ap.add_argument("--model", choices=sorted(SPECS), default="lab", help="model to sample (default lab)")
    ap.add_argument("--prompts", type=int, default=None, help="held-out prompts (default 100; quick 3)")
    ap.add_argument("--pool", type=int, default=None, help="best-of-N pool size per prompt (default 64; quick 4)")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default 20; quick 4)")
    ap.add_argument("--cfg", type=float, default=None, help="CFG scale (default: the model's, 5)")
    ap.add_argument("--seed-base", type=int, default=1000, help="prompt i samples with seed seed_base + i")
    ap.add_argument("--max-sub-batch", type=int, default=32, help="candidates per sampler call")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: on a shared 2-core machine one thread avoids OpenMP stalls)")
    ap.add_argument("--shard", default="0/1", help="K/S: run prompts with index %% S == K (run S processes, one per "
                                                    "core, then --report-only); records go to <out>/cases-K-of-S.jsonl "
                                                    "and a rerun skips prompts already recorded")
    ap.add_argument("--methods", default="", help="comma-separated shell patterns of method names to run (default "
                                                   "all); e.g. 'best_of_*,eacps_slerp0.6_8+1x3x4'")
    ap.add_argument("--report-only", action="store_true", help="write the report from the records in --out")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results/quality-cpu-<n>core; "
                                             "--quick: bench/results/tmp/quality-quick)")
    return ap.parse_args(argv)


def settings_of(args: argparse.Namespace) -> dict:
    quick = args.quick
    return {"quick": quick, "prompts": args.prompts or (3 if quick else 100), "pool": args.pool or (4 if quick else 64),
            "steps": args.steps or (4 if quick else 20), "cfg": args.cfg, "seed_base": args.seed_base,
            "max_sub_batch": args.max_sub_batch, "model_name": args.model, "methods_selected": args.methods}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cfg = settings_of(args)
    out_dir = args.out or (BENCH / "results" / "tmp" / "quality-quick" if args.quick
                           else BENCH / "results" / f"quality-cpu-{os.cpu_count()}core")
    out_dir.mkdir(parents=True, exist_ok=True)
    k, shards = (int(v) for v in args.shard.split("/"))
    methods = (quick_methods if args.quick else standard_methods)(cfg["pool"])
    if args.methods:
        patterns = [p.strip() for p in args.methods.split(",") if p.strip()]
        methods = [m for m in methods if any(fnmatch.fnmatchcase(m.name, p) for p in patterns)]
        if not methods:
            raise SystemExit(f"--methods {args.methods!r} selects none of the table's methods")
    names = [m.name for m in methods]
    if len(set(names)) != len(names):
        raise SystemExit(f"method names must be unique: {names}")
    torch.set_num_threads(args.threads)
    spec = SPECS[args.model](cfg["steps"], cfg["cfg"])
    prompts = _world().benchmark_prompts()
    if cfg["prompts"] > len(prompts):
        raise SystemExit(f"--prompts {cfg['prompts']}: the world holds out {len(prompts)} prompts")
    cases = [Case(i, p, args.seed_base + i) for i, p in enumerate(prompts[:cfg["prompts"]])]
    settings = {**cfg, "model": spec.describe(), "methods": {m.name: m.settings for m in methods},
                "search_verifier": "EACPSLab_LoadJudge which=V, weights judge_v=1.0",
                "evaluator": "EACPSLab_LoadJudge which=E (1 pass / 0 fail)"}
    settings_file = out_dir / "settings.json"
    if args.quick and not args.report_only:  # a machinery check: never resume an older one
        for old in out_dir.glob("cases-*.jsonl"):
            old.unlink()
    elif settings_file.is_file() and json.loads(settings_file.read_text()) != json.loads(json.dumps(settings)):
        raise SystemExit(f"{out_dir} holds records made with other settings ({settings_file}); use another --out "
                         "or delete its cases-*.jsonl and settings.json")
    settings_file.write_text(json.dumps(settings, indent=1) + "\n")

    if not args.report_only:
        base = make_base_dir(Path(tempfile.mkdtemp(prefix="eacps_quality_")))
        comfy = InProcessComfy(base, cpu=True)
        logging.getLogger().setLevel(logging.ERROR)
        bench = Bench(comfy, spec, cfg["pool"], args.max_sub_batch)
        path = out_dir / f"cases-{k}-of-{shards}.jsonl"
        done = {json.loads(line)["index"] for line in path.read_text().splitlines()} if path.is_file() else set()
        todo = [c for c in cases if c.index % shards == k and c.index not in done]
        t0 = time.perf_counter()
        for j, case in enumerate(todo):
            record = run_case(bench, methods, case)
            with path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            el = time.perf_counter() - t0
            o = record["outcomes"]
            print(f"[{j + 1}/{len(todo)}] {case.prompt!r}: one sample {o[names[0]]['e']:.2f}, "
                  + ", ".join(f"{m.name} {o[m.name]['e']:.2f}" for m in methods if m.family != "best_of_n")
                  + f" ({el:.0f} s, ~{el / (j + 1) * (len(todo) - j - 1):.0f} s left)", flush=True)
        if shards > 1:
            print(f"shard {k}/{shards} done; after every shard: {COMMAND} --report-only "
                  f"{' '.join(a for a, prev in zip(argv, ['', *argv[:-1]], strict=True) if '--shard' not in (a, prev))}")
            return 0
    records = []
    for path in sorted(out_dir.glob("cases-*.jsonl")):
        records += [json.loads(line) for line in path.read_text().splitlines()]
    wanted = {c.index for c in cases}
    records = sorted((r for r in records if r["index"] in wanted), key=lambda r: r["index"])
    if not records:
        raise SystemExit(f"no records in {out_dir}")
    shard_files = sorted(p.name for p in out_dir.glob("cases-*.jsonl"))
    # what ran: the pools once, every other method once per prompt; best-of-N entries read the pool, and
    # replayed methods (bench/quality_compute.py) read the screened pool, whose full cost the pool carries
    ran = [m for m in methods if m.family != "best_of_n" and not m.settings.get("replayed_from_screened_pool")]

    def pool_cost(pool: dict, key: str) -> float:
        return pool[key] * (pool.get("screened_wall_s", pool["wall_s"]) / pool["wall_s"] if pool["wall_s"] else 1.0)

    results = {
        "meta": meta(argv, args.threads),
        "settings": {**settings, "prompts": len(records), "prompts_asked": cfg["prompts"], "shards": len(shard_files),
                     "record_files": shard_files},
        "methods": summarise(methods, records),
        "total_wall_s": sum(pool_cost(r["pool"], "wall_s") + sum(r["outcomes"][m.name]["wall_s"] for m in ran)
                            for r in records),
        "total_cpu_s": sum(pool_cost(r["pool"], "cpu_s") + sum(r["outcomes"][m.name]["cpu_s"] for m in ran)
                           for r in records),
    }
    write_outputs(results, out_dir)
    print((out_dir / "results.md").read_text())
    print(f"results in {out_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
