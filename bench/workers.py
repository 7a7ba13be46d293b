"""Benchmark: one EACPS search spread over 0, 1, 2 and 3 worker ComfyUI instances on this machine.

    ./bench/workers.sh                 # the tiny model, N = 24 candidates, 20 steps (a few minutes)
    ./bench/workers.sh --quick         # smallest run (checks the machinery; no meaningful figures)

The searching instance is a real ComfyUI booted in this process; each worker is a real ComfyUI
HTTP server (main.py) on a loopback port with this pack and the test pack. Every process runs
torch on ONE thread (OMP_NUM_THREADS=1, torch.set_num_threads(1)), so on an n-core machine up to n
instances can sample at once. Configurations are interleaved across repetitions (medians), each run
uses fresh seeds so nothing is served from ComfyUI's cache, and every distributed run is checked to
give exactly the local run's winner. Printed and written to bench/results/<slug>/workers.{json,md}:

- speed-up of the search with k workers (+ the local share) over the local run, side by side;
- the overhead per candidate of going through a worker: (worker-only time with 1 worker - local
  time) / N, i.e. HTTP, graph rebuild, (de)serialisation and polling, at equal sampling work.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the worker servers
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))

import torch  # noqa: E402
from host.graphs import one_node_prompt, search_node  # noqa: E402

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402
from harness.server import ComfyServer  # noqa: E402


def search_prompt(seed: int, n_global: int, steps: int, urls: list[str], include_local: bool) -> dict:
    p = one_node_prompt(search_node(seed=seed, k_global=n_global, m=2, k_local=n_global // 4, steps=steps,
                                    max_sub_batch=2), captures=False)
    p["show"] = {"class_type": "PreviewAny", "inputs": {"source": ["one", 5]}}
    if urls:
        p["workers"] = {"class_type": "EACPS_Workers", "inputs": {
            "urls": "\n".join(urls), "auth_env": "", "include_local": include_local, "timeout_s": 600.0}}
        p["one"]["inputs"]["workers"] = ["workers", 0]
    return p


def winner_of(result) -> int:
    return json.loads(result.outputs["show"]["text"][0])["winner_seed"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    n_global, steps, repeats, max_workers = (4, 2, 1, 2) if args.quick else (12, 20, args.repeats, 3)
    n = n_global + 2 * (n_global // 4)

    tmp = Path(tempfile.mkdtemp(prefix="eacps_bench_workers_"))
    comfy = InProcessComfy(make_base_dir(tmp / "search"))
    servers = [ComfyServer(make_base_dir(tmp / f"w{i}"), tmp / f"w{i}.log") for i in range(max_workers)]
    try:
        configs = {"local": ([], True)}
        for k in range(1, max_workers + 1):
            configs[f"local + {k} worker{'s' * (k > 1)}"] = ([s.url for s in servers[:k]], True)
        configs["1 worker only"] = ([servers[0].url], False)
        # Warm-up: every instance loads the models once.
        for urls, local in configs.values():
            comfy.run(search_prompt(1, n_global, steps, urls, local))
        times: dict[str, list[float]] = {name: [] for name in configs}
        seed = 100
        for _ in range(repeats):
            seed += 1
            winners = {}
            for name, (urls, local) in configs.items():
                t0 = time.perf_counter()
                result = comfy.run(search_prompt(seed, n_global, steps, urls, local))
                times[name].append(time.perf_counter() - t0)
                winners[name] = winner_of(result)
            if len(set(winners.values())) != 1:
                raise SystemExit(f"distributed runs chose other winners than the local run: {winners}")
    finally:
        for s in servers:
            s.stop()

    med = {name: statistics.median(t) for name, t in times.items()}
    rows = [{"config": name, "median_s": med[name], "runs_s": times[name],
             "speedup_vs_local": med["local"] / med[name]} for name in configs]
    overhead = (med["1 worker only"] - med["local"]) / n
    out = {
        "what": "one EACPS_Search (tiny model) spread over worker ComfyUI servers on this machine",
        "command": "./bench/workers.sh" + (" --quick" if args.quick else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch_threads_per_process": 1},
        "search": {"N": n, "K_global": n_global, "M": 2, "K_local": n_global // 4, "steps": steps,
                   "sub_batch": 2, "repeats": repeats},
        "rows": rows,
        "overhead_per_candidate_s": overhead,
        "local_time_per_candidate_s": med["local"] / n,
    }
    lines = [f"# Workers benchmark ({out['date']}, {os.cpu_count()} CPUs, 1 torch thread per process)", "",
             f"`{out['command']}`: one EACPS_Search, N = {n} candidates, {steps} steps, sub-batch 2, "
             f"median of {repeats}.", "",
             "| configuration | median s | speed-up vs local |", "|---|---|---|"]
    lines += [f"| {r['config']} | {r['median_s']:.3f} | {r['speedup_vs_local']:.2f}x |" for r in rows]
    lines += ["", f"Overhead of going through a worker: {overhead * 1000:+.1f} ms per candidate "
              f"(local sampling+scoring: {med['local'] / n * 1000:.1f} ms per candidate)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        dest = BENCH / "results" / f"cpu-{os.cpu_count()}core"
        dest.mkdir(parents=True, exist_ok=True)
        (dest / "workers.json").write_text(json.dumps(out, indent=1) + "\n")
        (dest / "workers.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
