"""What the compute options cost and save in wall time, and the search's own overhead (issue #11).

    .venv/bin/python bench/compute_cost.py [--reps 3] [--steps 20] [--n 20] [--out DIR]

Runs EACPS_BestOfN on the test pack's tiny random model (64 px, euler, technical verifier) in a
ComfyUI booted in this process: plain, with chain pruning, with preview screening and with an NFE
budget, interleaved over ``--reps`` repetitions with new seeds (ComfyUI's cache cannot make a run
free). For each it reports the NFE the report counted, the wall time of the prompt and the part of
it spent outside sampling, decoding and scoring (the search's own overhead: strategy, pool,
report, grid). On random weights the preview scores rank nothing, so this measures cost only;
quality lives in bench/quality.py.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import torch  # noqa: E402
from host.graphs import best_of_n_node, capture, one_node_prompt  # noqa: E402

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402


def variants(steps: int) -> dict[str, dict]:
    q = max(1, steps // 4)
    return {
        "plain": {},
        f"chain k={q} keep 1/4": {"prune_steps": str(q), "prune_keep": 0.25},
        f"chain k={steps // 2} keep 1/2": {"prune_steps": str(steps // 2), "prune_keep": 0.5},
        f"preview {q} steps keep 1/4": {"prune_steps": str(q), "prune_keep": 0.25, "prune_kind": "preview"},
        "max_nfe = half": {"max_nfe": "half"},
    }


def split_drift(comfy, steps: int, seeds=range(8)) -> dict:
    """How far a chain continued at a pruning step lands from the uninterrupted run, per sampler:
    max |difference| of the final latents over the latents' spread (0 for single-step samplers)."""
    LocalRunner = comfy.pack_module("nodes.runner").LocalRunner  # noqa: N806
    make_setup = comfy.pack_module("nodes.sampling").make_setup
    NoiseRecipe = comfy.pack_module("search.noise").NoiseRecipe  # noqa: N806
    Task = comfy.pack_module("search.stage").Task  # noqa: N806

    tiny = sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_TinyModel"].__module__].tiny
    model, vae = tiny.tiny_model(0), tiny.tiny_vae(0)
    pos, neg = tiny.text_conditioning("a red apple"), tiny.text_conditioning("")
    out = {}
    for name in ("euler", "heun", "dpmpp_2m", "uni_pc", "lms", "deis"):
        setup = make_setup(model, pos, neg, {"samples": torch.zeros(1, 4, 8, 8)}, vae, 0, steps, 5.0, name,
                           "normal", 1.0, 8)
        runner = LocalRunner(setup)
        rows = {}
        for split in (steps // 4, steps // 2):
            recipes = [NoiseRecipe(s) for s in seeds]
            whole, _ = runner.run([Task(r, 0, steps, steps, decode="none") for r in recipes])
            first, _ = runner.run([Task(r, 0, split, steps, decode="none") for r in recipes])
            rest, _ = runner.run([Task(r, split, steps, steps, state=o.state, decode="none")
                                  for r, o in zip(recipes, first, strict=True)])
            a = torch.cat([o.state for o in whole])
            b = torch.cat([o.state for o in rest])
            rows[f"split at {split}"] = float((a - b).abs().max() / a.std())
        out[name] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "compute-cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    comfy = InProcessComfy(make_base_dir(Path(tempfile.mkdtemp(prefix="eacps_compute_"))))
    captured = sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_Capture"].__module__].CAPTURED
    table = variants(args.steps)
    rows: dict[str, list[dict]] = {name: [] for name in table}
    for rep in range(args.reps + 1):  # repetition 0 warms up
        for name, options in table.items():
            options = dict(options)
            if options.get("max_nfe") == "half":
                options["max_nfe"] = args.n * args.steps // 2
            node = best_of_n_node(n=args.n, seed=1000 + rep, steps=args.steps, max_sub_batch=4)
            node["inputs"].update(options)
            p = one_node_prompt(node, captures=False)
            p["cap"] = capture(["one", 5], "report")
            t0 = time.perf_counter()
            comfy.run(p)
            wall = time.perf_counter() - t0
            report = json.loads(captured.pop("report"))
            c = report["compute"]
            inside = sum(c["seconds"].values())
            if rep:
                rows[name].append({"wall_s": wall, "nfe": c["nfe"], "inside_s": inside, "calls": c["calls"],
                                   "finished": report["budget"]["finished"], "pruned": report["budget"]["pruned"],
                                   "unspent": report["budget"]["unspent"], "seconds": c["seconds"]})
    plain = statistics.median(r["wall_s"] for r in rows["plain"])
    plain_nfe = rows["plain"][0]["nfe"]
    summary = {}
    lines = [f"# Compute options: cost on the tiny random model (best-of-{args.n}, {args.steps} euler steps, "
             f"64 px, sub-batch 4; median of {args.reps} interleaved runs)", "",
             "| option | NFE | NFE vs plain | wall s | wall vs plain | outside sampler/decoder/verifiers |",
             "|---|---|---|---|---|---|"]
    for name, rs in rows.items():
        wall = statistics.median(r["wall_s"] for r in rs)
        over = statistics.median((r["wall_s"] - r["inside_s"]) / r["wall_s"] for r in rs)
        nfe = statistics.median(r["nfe"] for r in rs)
        summary[name] = {"wall_s": wall, "nfe": nfe, "overhead_fraction": over, "runs": rs}
        lines.append(f"| {name} | {nfe:g} | {nfe / plain_nfe:.2f} | {wall:.3f} | {wall / plain:.2f} | {over:.1%} |")
    print("\n".join(lines), flush=True)
    drift = split_drift(comfy, args.steps)
    splits = list(next(iter(drift.values())))
    lines += ["", f"Continued chain vs uninterrupted run ({args.steps} steps, 8 seeds): max |difference| of the "
              "final latents / their standard deviation", "", "| sampler | " + " | ".join(splits) + " |",
              "|---|" + "---|" * len(splits)]
    lines += [f"| {name} | " + " | ".join(f"{v:.2g}" for v in rows.values()) + " |" for name, rows in drift.items()]
    cmd = "nice -n 5 .venv/bin/python bench/compute_cost.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines += ["", f"Command: `{cmd}`, CPU ({os.cpu_count()} cores, shared), torch threads 1."]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"command": cmd, "settings": vars(args) | {"out": str(args.out)},
                                                       "methods": summary, "split_drift": drift}, indent=1))
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
