"""Run EACPS headless through a real in-process ComfyUI on the lab world (lab/README.md): a small
trained text-to-image model for two coloured shapes and a relation, 64x64 pixels, on the CPU.

(a) the five-node two-stage search: Global(K=8) -> Score -> Potential -> Elite(M=3) -> Local(K=4)
    -> Score -> Potential -> Elite(M=1), for the first prompt;
(b) the same search as one EACPS_Search node, for each of ten prompts the judges never saw
    (world.benchmark_prompts()), beside a stock KSampler with the same seed (= candidate 0).

The search verifier is the lab's judge V, and the held-out judge E says whether candidate 0 and the
winner follow the prompt. When the judges are not installed (lab/comfy_lab_pack/judge_nodes.py
absent), the search uses the weight-free technical verifier and a pixel-colour heuristic stands in
for E; the demo says so. Pictures, grids and reports go to demo_output/.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from host.graphs import (  # noqa: E402
    capture,
    ksampler_node,
    lab_base_nodes,
    one_node_prompt,
    search_node,
    two_stage_prompt,
)

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402
from harness.tiny_swaps import lab_world  # noqa: E402

SETTINGS = dict(seed=1, k_global=8, m=3, k_local=4, mode="slerp", strength=0.6, anneal=0.5, steps=20, cfg=5.0)
N_PROMPTS = 10


class Verifiers:
    """Judge V for the search and judge E for evaluation, or the stand-ins when they are absent."""

    def __init__(self, comfy: InProcessComfy):
        judge = comfy.nodes.NODE_CLASS_MAPPINGS.get("EACPSLab_LoadJudge")
        self.world = lab_world()
        if judge is not None:
            self.search = {"class_type": "EACPSLab_LoadJudge", "inputs": {"which": "V"}}
            self.weights = "judge_v=1.0"
            self.evaluator = judge().load("E")[0]
            self.e_name = "E"
        else:
            print("NOTE: the lab judges are not installed (lab/comfy_lab_pack/judge_nodes.py): searching "
                  "with the technical verifier, and a pixel-colour heuristic stands in for judge E.")
            self.search = {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}}
            self.weights = "sharpness=1.0\nexposure=1.0"
            self.evaluator = None
            self.e_name = "heuristic"

    def verdict(self, image, prompt: str) -> tuple[bool, int]:
        """(passes, parts of the prompt right: 0-3, see world.parts_satisfied) for IMAGE [1, 64, 64, 3]."""
        if self.evaluator is not None:
            result = self.evaluator.score(image, prompt, None)
            judges = sys.modules[type(self.evaluator).__module__].judges
            parts = int(judges.e_parts(self.evaluator.net, image, prompt)[0])
            return bool(next(iter(result.raw.values()))[0] > 0.5), parts
        objects = self.world.pixel_objects((image[0].numpy() * 255).round().astype(np.uint8))
        return self.world.satisfies(objects, prompt), self.world.parts_satisfied(objects, prompt)


def five_node_prompt(prompt_text: str, v: Verifiers) -> dict:
    p = two_stage_prompt(captures=False, weights=v.weights, prompt_text=prompt_text, **SETTINGS)
    p.update(lab_base_nodes(prompt_text))
    p["verifier"] = v.search
    del p["save"]  # the preview node of the test graph
    p["save_best"] = {"class_type": "EACPS_SaveImageWithReport",
                      "inputs": {"images": ["elite2", 1], "report": ["elite2", 5], "filename_prefix": "five_node/best"}}
    p["save_grid"] = {"class_type": "SaveImage", "inputs": {"images": ["elite2", 6], "filename_prefix": "five_node/grid"}}
    return p


def one_node(prompt_text: str, v: Verifiers, folder: str) -> dict:
    p = one_node_prompt(search_node(weights=v.weights, prompt_text=prompt_text, **SETTINGS))
    p.update(lab_base_nodes(prompt_text))
    p["verifier"] = v.search
    p["save_best"] = {"class_type": "EACPS_SaveImageWithReport",
                      "inputs": {"images": ["one", 0], "report": ["one", 5], "filename_prefix": f"{folder}/best"}}
    p["save_grid"] = {"class_type": "SaveImage", "inputs": {"images": ["one", 4], "filename_prefix": f"{folder}/grid"}}
    # Candidate 0 on its own: a stock KSampler with the search's seed and settings.
    p["ks"] = ksampler_node(seed=SETTINGS["seed"], steps=SETTINGS["steps"], cfg=SETTINGS["cfg"])
    p["ks_dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["vae", 0]}}
    p["cap_cand0"] = capture(["ks_dec", 0], "cand0")
    return p


def main() -> int:
    import torch

    # The models are tiny: one thread is enough, and on a busy machine two threads were measured
    # several times slower than one (lab/README.md).
    torch.set_num_threads(1)
    out_dir = REPO / "demo_output"
    if out_dir.exists():
        shutil.rmtree(out_dir)
    with tempfile.TemporaryDirectory(prefix="eacps_demo_") as tmp:
        comfy = InProcessComfy(make_base_dir(Path(tmp)))
        captured = sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_Capture"].__module__].CAPTURED
        v = Verifiers(comfy)
        world = v.world
        # Held-out prompts whose two objects differ in colour (easier to see), spread over the list.
        two_colours = [p for p in world.benchmark_prompts()
                       if world.parse_prompt(p).obj1[0] != world.parse_prompt(p).obj2[0]]
        prompts = two_colours[:: len(two_colours) // N_PROMPTS][:N_PROMPTS]
        t0 = time.perf_counter()
        comfy.run(five_node_prompt(prompts[0], v))
        five_s = time.perf_counter() - t0
        rows, one_s = [], []
        for i, text in enumerate(prompts):
            folder = "one_node" if i == 0 else f"one_node_{i}"
            t0 = time.perf_counter()
            comfy.run(one_node(text, v, folder))
            one_s.append(time.perf_counter() - t0)
            rows.append((text, v.verdict(captured["cand0"], text), v.verdict(captured["one_image"], text)))
        shutil.copytree(Path(tmp) / "output", out_dir)
    print()
    n = SETTINGS["k_global"] + SETTINGS["m"] * SETTINGS["k_local"]
    print(f"Lab world, search verifier {v.search['class_type']}, {SETTINGS['k_global']} + {SETTINGS['m']}x"
          f"{SETTINGS['k_local']} = {n} candidates, euler {SETTINGS['steps']} steps, cfg {SETTINGS['cfg']}")
    print(f"five-node graph: {five_s:.1f} s; one-node EACPS_Search: {np.mean(one_s):.1f} s per prompt")
    print(f"{'prompt (held out from the judges)':<44} {'candidate 0':>14} {'winner':>14}   ({v.e_name}: verdict, "
          "parts of the prompt right of 3)")
    for text, cand0, win in rows:
        print(f"{text:<44} {'pass' if cand0[0] else 'fail':>9} ({cand0[1]}/3) {'pass' if win[0] else 'fail':>9} ({win[1]}/3)")
    for what, key in (("verdict", 0), ("parts right", 1)):
        better = sum(w[key] > c[key] for _, c, w in rows)
        worse = sum(w[key] < c[key] for _, c, w in rows)
        print(f"{v.e_name} {what}: the winner is better than candidate 0 on {better} of {len(rows)} prompts, worse on "
              f"{worse}, equal on {len(rows) - better - worse}")
    print(f"{v.e_name}: the winner passes on {sum(w[0] for _, _, w in rows)}/{len(rows)} prompts, candidate 0 on "
          f"{sum(c[0] for _, c, _ in rows)}/{len(rows)}")
    reports = {p.parent.name: json.loads(p.read_text()) for p in sorted(out_dir.glob("*_node/best_*.json"))}
    if len(reports) == 2 and len({r["winner_seed"] for r in reports.values()}) == 1:
        print("five-node graph and EACPS_Search chose the same winner for the first prompt, as they should")
    print("Wrote (grids: winner framed green, elites orange):")
    for f in sorted(p.relative_to(REPO) for p in out_dir.rglob("*grid*.png")):
        print(f"  {f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
