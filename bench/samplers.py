"""Per-candidate sampling time at sub-batch 1 vs S for noise-injecting samplers next to euler (issue #17).

    ./bench/run.sh samplers                 # CPU: tiny model, euler / euler_ancestral / dpmpp_2m_sde, S = 1 and 8
    ./bench/run.sh samplers --samplers euler er_sde --sub-batches 1 4 8 --reps 7

Each method is the global stage alone (EACPS_SeedSearchGlobal with K_global = N candidates ->
Capture of the decoded images): it samples and decodes N candidates in sub-batches of S and scores
nothing, so the time is the sampling path this issue changed. Before issue #17 every
noise-injecting sampler ran at S = 1 whatever max_sub_batch said; now euler_ancestral (one
generator per candidate) and dpmpp_2m_sde (one Brownian tree per candidate) run S at a time.
All methods run once as a warm-up, then interleaved over the repetitions with the order rotated;
each run gets new seeds, and a run that ComfyUI served from its cache stops the benchmark.
Results: bench/results/<device-slug>/samplers.json and samplers.md.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

import torch  # noqa: E402
from host.graphs import capture  # noqa: E402
from workloads import TINY, ModelSpec, model_nodes, settings  # noqa: E402

from bench import BENCH, REPO, Bench, device_info, interleaved, meta  # noqa: E402
from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402

SAMPLED = ("global",)


def global_prompt(spec: ModelSpec, sampler_name: str, n: int, sub_batch: int, seed: int) -> dict:
    p = model_nodes(spec)
    p["global"] = {
        "class_type": "EACPS_SeedSearchGlobal",
        "inputs": {"model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                   "latent_image": ["latent", 0], "vae": ["vae", 0], "k_global": n, "max_sub_batch": sub_batch,
                   **settings(spec, seed), "sampler_name": sampler_name},
    }
    p["out"] = capture(["global", 1], "bench_images")
    return p


def run(b: Bench, spec: ModelSpec, samplers: list[str], sub_batches: list[int], n: int, reps: int) -> dict:
    methods = {}
    for name in samplers:
        for s in sub_batches:
            methods[f"{name}_S{s}"] = lambda name=name, s=s: b.run(
                global_prompt(spec, name, n, s, b.next_seed()), SAMPLED)
    times = interleaved(methods, reps)
    s_lo, s_hi = min(sub_batches), max(sub_batches)
    rows = {}
    for name in samplers:
        per = {s: times[f"{name}_S{s}"]["median_s"] / n for s in sub_batches}
        rows[name] = {"per_candidate_s": {str(s): per[s] for s in sub_batches},
                      f"speedup_S{s_lo}_over_S{s_hi}": per[s_lo] / per[s_hi]}
    ref = samplers[0]
    for name in samplers:
        rows[name][f"per_candidate_over_{ref}_at_S{s_hi}"] = (rows[name]["per_candidate_s"][str(s_hi)]
                                                               / rows[ref]["per_candidate_s"][str(s_hi)])
    return {"n": n, "reps": reps, "sub_batches": sub_batches, "times": times, "rows": rows}


def markdown(results: dict) -> str:
    m, r = results["meta"], results["samplers"]
    s_lo, s_hi = min(r["sub_batches"]), max(r["sub_batches"])
    ref = next(iter(r["rows"]))
    lines = [
        "# Sampler batching (issue #17)", "",
        f"`{m['command']}` — {m['date']}, commit {m['git_commit']}, {m['device']}, torch {m['torch']} "
        f"({m['torch_threads']} thread(s)), ComfyUI {m['comfyui']}.", "",
        f"Global stage only: {r['n']} candidates sampled and decoded per run, {r['reps']} interleaved "
        f"repetitions after a warm-up, medians; {results['spec']['name']} model, "
        f"{results['spec']['width']}x{results['spec']['height']} px, {results['spec']['steps']} steps, "
        f"cfg {results['spec']['cfg']}, normal scheduler.", "",
        "| sampler | " + " | ".join(f"per candidate S={s} ms" for s in r["sub_batches"])
        + f" | S={s_lo} / S={s_hi} | per candidate / {ref} at S={s_hi} |",
        "|---" * (len(r["sub_batches"]) + 3) + "|",
    ]
    for name, row in r["rows"].items():
        cells = [f"{row['per_candidate_s'][str(s)] * 1000:.1f}" for s in r["sub_batches"]]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {row[f'speedup_S{s_lo}_over_S{s_hi}']:.2f}x | {row[f'per_candidate_over_{ref}_at_S{s_hi}']:.2f} |")
    lines += ["", f"S={s_lo} / S={s_hi}: how much faster a candidate is at sub-batch {s_hi}. Before issue #17 the "
              f"noise-injecting samplers always ran at S=1, so for them this is the gain of the change.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samplers", nargs="+", default=["euler", "euler_ancestral", "dpmpp_2m_sde"],
                    help="the first one is the reference of the last column")
    ap.add_argument("--sub-batches", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--n", type=int, default=8, help="candidates per run")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: torch's own); see bench/README.md")
    ap.add_argument("--out", type=Path, help="results folder (default bench/results/<device-slug>/)")
    args = ap.parse_args(argv)
    cuda = torch.cuda.is_available()
    if args.threads and not cuda:
        torch.set_num_threads(args.threads)
    comfy = InProcessComfy(make_base_dir(Path(tempfile.mkdtemp(prefix="eacps_bench_"))), cpu=not cuda)
    logging.getLogger().setLevel(logging.ERROR)
    if cuda:
        print("[bench] CUDA found, but this benchmark has only the tiny model: its GPU times mean little", flush=True)
    out_dir = args.out or BENCH / "results" / device_info(cuda)[1]
    results = {"meta": meta(cuda, ["samplers", *argv]), "spec": TINY.describe(),
               "samplers": run(Bench(comfy, cuda), TINY, args.samplers, sorted(args.sub_batches), args.n, args.reps)}
    results["spec"].pop("sampler_name")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "samplers.json").write_text(json.dumps(results, indent=1) + "\n")
    (out_dir / "samplers.md").write_text(markdown(results))
    print(f"[bench] wrote {(out_dir / 'samplers.md').relative_to(REPO)}", flush=True)
    print(markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
