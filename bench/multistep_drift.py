"""How much a chain continued at a pruning step drifts from the uninterrupted run, per sampler, on
the lab world's trained model (issue #11: multistep samplers restart their history at a split).

    .venv/bin/python bench/multistep_drift.py [--prompts 50] [--seeds 2] [--out DIR]

For each sampler and split step, every (held-out prompt, seed) is sampled twice through the pack's
own runner (nodes/runner.py, the code EACPS_BestOfN and EACPS_Search prune with): once
uninterrupted over 20 steps, once to the split and continued from the saved latent. Printed and
written to ``--out``/results.{json,md}: the largest |latent difference| over the latents' spread,
the mean |pixel difference| of the decoded images (0-255), and how often held-out judge E's verdict
differs between the two (with both pass rates). Single-step samplers (euler) must show zero drift;
that row checks the measurement.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(BENCH))

import torch  # noqa: E402
from host.graphs import capture  # noqa: E402

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402

SAMPLERS = ("euler", "dpmpp_2m", "uni_pc", "lms", "deis", "ipndm")
STEPS = 20
SPLITS = (5, 10)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--prompts", type=int, default=50)
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=BENCH / "results" / "multistep-drift-cpu")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    comfy = InProcessComfy(make_base_dir(Path(tempfile.mkdtemp(prefix="eacps_drift_"))))
    prompts = sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS["EACPSLab_LoadJudge"].__module__].judges.world \
        .benchmark_prompts()[:args.prompts]
    with torch.inference_mode():  # as ComfyUI runs a prompt (the captured tensors are inference tensors)
        rows = measure(comfy, prompts, args.seeds)
    write(rows, args, argv)
    return 0


def measure(comfy: InProcessComfy, prompts: list[str], seeds: int) -> dict:
    """Per sampler and split: the drift figures over ``prompts`` x ``seeds`` (see the module docstring)."""
    mappings = comfy.nodes.NODE_CLASS_MAPPINGS
    captured = sys.modules[mappings["EACPSTest_Capture"].__module__].CAPTURED
    LocalRunner = comfy.pack_module("nodes.runner").LocalRunner  # noqa: N806
    make_setup = comfy.pack_module("nodes.sampling").make_setup
    NoiseRecipe = comfy.pack_module("search.noise").NoiseRecipe  # noqa: N806
    Task = comfy.pack_module("search.stage").Task  # noqa: N806
    e = sys.modules[mappings["EACPSLab_LoadJudge"].__module__].load_judge("E")
    comfy.run({"m": {"class_type": "EACPSLab_LoadModel", "inputs": {}},
               "v": {"class_type": "EACPSLab_LoadVAE", "inputs": {}},
               "n": {"class_type": "EACPSLab_TextEncode", "inputs": {"text": ""}},
               "cm": capture(["m", 0], "model"), "cv": capture(["v", 0], "vae"), "cn": capture(["n", 0], "neg")})
    model, vae, negative = captured["model"], captured["vae"], captured["neg"]
    rows = {}
    for name in SAMPLERS:
        diffs = {s: {"latent": 0.0, "pixels": [], "flips": 0, "pass_whole": 0, "pass_split": 0} for s in SPLITS}
        for i, text in enumerate(prompts):
            comfy.run({"p": {"class_type": "EACPSLab_TextEncode", "inputs": {"text": text}},
                       "c": capture(["p", 0], "pos")})
            setup = make_setup(model, captured["pos"], negative, {"samples": torch.zeros(1, 4, 8, 8)}, vae, 0, STEPS,
                               5.0, name, "normal", 1.0, 8)
            runner = LocalRunner(setup)
            recipes = [NoiseRecipe(1000 * i + k) for k in range(seeds)]
            whole, _ = runner.run([Task(r, 0, STEPS, STEPS) for r in recipes])
            e_whole = e.score(torch.cat([o.image for o in whole]), text).raw[e.aspects[0]]
            for s in SPLITS:
                first, _ = runner.run([Task(r, 0, s, STEPS, decode="none") for r in recipes])
                rest, _ = runner.run([Task(r, s, STEPS, STEPS, state=o.state) for r, o in zip(recipes, first,
                                                                                              strict=True)])
                a, b = torch.cat([o.state for o in whole]), torch.cat([o.state for o in rest])
                ia, ib = torch.cat([o.image for o in whole]), torch.cat([o.image for o in rest])
                e_split = e.score(ib, text).raw[e.aspects[0]]
                d = diffs[s]
                d["latent"] = max(d["latent"], float((a - b).abs().max() / a.std()))
                d["pixels"].append(float((ia - ib).abs().mean() * 255))
                d["flips"] += int((e_whole != e_split).sum())
                d["pass_whole"] += int(e_whole.sum())
                d["pass_split"] += int(e_split.sum())
        n = len(prompts) * seeds
        rows[name] = {f"split at {s}": {"max_latent_diff_over_std": d["latent"],
                                        "mean_abs_pixel_diff_255": sum(d["pixels"]) / len(d["pixels"]),
                                        "e_verdict_flips": d["flips"], "e_pass_uninterrupted": d["pass_whole"] / n,
                                        "e_pass_continued": d["pass_split"] / n, "samples": n}
                      for s, d in diffs.items()}
        print(name, json.dumps(rows[name]), flush=True)
    return rows


def write(rows: dict, args: argparse.Namespace, argv: list[str] | None) -> None:
    cmd = "nice -n 5 .venv/bin/python bench/multistep_drift.py " + " ".join(argv if argv is not None else sys.argv[1:])
    lines = [f"# Continued chains vs uninterrupted runs on the lab world ({STEPS} steps, cfg 5, "
             f"{args.prompts} held-out prompts x {args.seeds} seeds)", "",
             "| sampler | split | max latent diff / std | mean pixel diff (0-255) | E verdicts that differ | "
             "E pass: uninterrupted | E pass: continued |", "|---|---|---|---|---|---|---|"]
    for name, per in rows.items():
        for split, r in per.items():
            lines.append(f"| {name} | {split} | {r['max_latent_diff_over_std']:.2g} | "
                         f"{r['mean_abs_pixel_diff_255']:.2f} | {r['e_verdict_flips']}/{r['samples']} | "
                         f"{r['e_pass_uninterrupted']:.3f} | {r['e_pass_continued']:.3f} |")
    lines += ["", f"Command: `{cmd}`, CPU ({os.cpu_count()} cores, shared), torch threads 1."]
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"command": cmd, "rows": rows}, indent=1) + "\n")
    (args.out / "results.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    sys.exit(main())
