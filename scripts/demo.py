"""Run a search headless through a real in-process ComfyUI on the tiny test model.

Writes the best image, the candidate grid and the JSON report to demo_output/ and prints where.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402


def main() -> int:
    out_dir = REPO / "demo_output"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with tempfile.TemporaryDirectory(prefix="eacps_demo_") as tmp:
        comfy = InProcessComfy(make_base_dir(Path(tmp)))
        prompt = demo_prompt()
        t0 = time.perf_counter()
        result = comfy.run(prompt)
        seconds = time.perf_counter() - t0
        shutil.copytree(Path(tmp) / "output", out_dir)
    files = sorted(p.relative_to(REPO) for p in out_dir.rglob("*") if p.is_file())
    print(f"\nDemo finished in {seconds:.2f} s (outputs of nodes: {sorted(result.outputs)}). Wrote:")
    for f in files:
        print(f"  {f}")
    return 0


def demo_prompt() -> dict:
    from host.test_http_smoke import tiny_sampling_prompt

    return tiny_sampling_prompt(prefix="eacps_demo/plain")


if __name__ == "__main__":
    raise SystemExit(main())
