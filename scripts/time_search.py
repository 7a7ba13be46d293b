"""Time a 20-candidate EACPS search (8 + 3*4) on the tiny test model through an in-process ComfyUI.

    COMFYUI_PATH=$PWD/.comfyui/ComfyUI .venv/bin/python scripts/time_search.py [--repeats 5] [--steps 4]

Prints the median wall time of the whole two-stage prompt (sampling, decoding, scoring, selection;
the tiny model/VAE loaders are cached after the warm-up run) at sub-batch 1 and 8.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1] / "tests"
sys.path.insert(0, str(TESTS))

import conftest  # noqa: E402,F401  (imports the pack as a package, as the tests do)
from host.graphs import two_stage_prompt  # noqa: E402

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--sub-batches", type=int, nargs="+", default=[1, 8])
    args = ap.parse_args()
    comfy = InProcessComfy(make_base_dir(Path(tempfile.mkdtemp(prefix="eacps_time_"))))
    logging.getLogger().setLevel(logging.ERROR)
    comfy.run(two_stage_prompt(seed=0, steps=args.steps, captures=False))  # warm-up
    seed = 1
    for sub_batch in args.sub_batches:
        times = []
        for _ in range(args.repeats):
            seed += 1  # a new seed so every node runs again
            prompt = two_stage_prompt(seed=seed, steps=args.steps, max_sub_batch=sub_batch, captures=False)
            t0 = time.perf_counter()
            comfy.run(prompt)
            times.append(time.perf_counter() - t0)
        print(f"sub_batch={sub_batch}: 20 candidates x {args.steps} steps, 64x64 px: median "
              f"{statistics.median(times):.3f} s (min {min(times):.3f}, max {max(times):.3f}, n={len(times)})")


if __name__ == "__main__":
    main()
