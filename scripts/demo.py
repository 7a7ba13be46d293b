"""Run EACPS headless through a real in-process ComfyUI on the tiny test model (no weights needed):

(a) the five-node two-stage search: Global(K=8) -> Score -> Potential -> Elite(M=3) -> Local(K=4)
    -> Score -> Potential -> Elite(M=1);
(b) the same search as one EACPS_Search node.

Both use the weight-free technical verifier (sharpness + exposure), save the best image with
EACPS_SaveImageWithReport (PNG + JSON report beside it) and the candidate grid with SaveImage,
into demo_output/, and print the paths and the winners. The tiny model's pictures are noise; the
search, the files and the report are the real ones.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from host.graphs import one_node_prompt, search_node, two_stage_prompt  # noqa: E402

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402

SETTINGS = dict(seed=1, k_global=8, m=3, k_local=4, mode="slerp", strength=0.6, anneal=0.5)


def five_node_prompt() -> dict:
    p = two_stage_prompt(captures=False, **SETTINGS)
    del p["save"]  # the preview node of the test graph
    p["save_best"] = {"class_type": "EACPS_SaveImageWithReport",
                      "inputs": {"images": ["elite2", 1], "report": ["elite2", 5], "filename_prefix": "five_node/best"}}
    p["save_grid"] = {"class_type": "SaveImage", "inputs": {"images": ["elite2", 6], "filename_prefix": "five_node/grid"}}
    return p


def one_node() -> dict:
    p = one_node_prompt(search_node(**SETTINGS), captures=False)
    p["save_best"] = {"class_type": "EACPS_SaveImageWithReport",
                      "inputs": {"images": ["one", 0], "report": ["one", 5], "filename_prefix": "one_node/best"}}
    p["save_grid"] = {"class_type": "SaveImage", "inputs": {"images": ["one", 4], "filename_prefix": "one_node/grid"}}
    return p


def main() -> int:
    out_dir = REPO / "demo_output"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    timings = {}
    with tempfile.TemporaryDirectory(prefix="eacps_demo_") as tmp:
        comfy = InProcessComfy(make_base_dir(Path(tmp)))
        for name, prompt in (("five-node graph", five_node_prompt()), ("one-node EACPS_Search", one_node())):
            t0 = time.perf_counter()
            comfy.run(prompt)
            timings[name] = time.perf_counter() - t0
        shutil.copytree(Path(tmp) / "output", out_dir)
    print()
    for name, seconds in timings.items():
        print(f"{name}: {seconds:.2f} s (20 candidates, 4 steps, 64x64 px, tiny CPU model)")
    reports = {p.parent.name: json.loads(p.read_text()) for p in sorted(out_dir.rglob("best_*.json"))}
    for folder, report in reports.items():
        win = report["candidates"][report["winner"]]
        print(f"{folder}: winner #{win['id']} seed {win['seed']} ({win['recipe']['mode']}), U = {win['potential']:.3f}, "
              f"budget {report['budget']['formula']}")
    if len(reports) == 2 and len({r["winner_seed"] for r in reports.values()}) == 1:
        print("both searches chose the same winner, as they should")
    print("Wrote:")
    for f in sorted(p.relative_to(REPO) for p in out_dir.rglob("*") if p.is_file()):
        print(f"  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
