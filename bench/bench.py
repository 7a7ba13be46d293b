"""EACPS benchmarks (issue #6): search overhead and batching, verifier cost, memory, scaling in N.

    ./bench/run.sh                 # CPU: the tiny model, all four parts (~5 min on 2 cores)
    ./bench/run.sh --gpu           # CUDA: SD1.5 512 px, SDXL 1024 px, FLUX 1024 px, real-size verifiers
    ./bench/run.sh --gpu --models sd15   # one model per command (results merge into one file)
    ./bench/run.sh --smoke         # the real-architecture path, tiny sizes, any device (not a benchmark)
    ./bench/run.sh --quick         # smallest run of every part (the test uses it; no meaningful numbers)

Everything is timed through a real ComfyUI booted in this process (InProcessComfy.run of API-format
prompts): warm-up first, then the methods interleaved across repetitions; medians and minima.
Each repetition uses new seeds so ComfyUI's output cache cannot make a run free, and each timed
run is checked to have executed its sampler nodes (none reported in ``execution_cached``).
Results go to bench/results/<device-slug>/: results.json, results.md, time_vs_n.png.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import json
import logging
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "tests"))
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_var, "1")

import psutil  # noqa: E402
import torch  # noqa: E402
from workloads import (  # noqa: E402
    GPU_MODELS,
    SAMPLED_EACPS,
    SMOKE_MODELS,
    TINY,
    ModelSpec,
    chunks,
    eacps_prompt,
    eacps_schedule,
    split,
    stock_prompt,
)

from harness.inprocess import InProcessComfy  # noqa: E402
from harness.paths import make_base_dir  # noqa: E402

# ----------------------------------------------------------------------------------- timing core


class Bench:
    def __init__(self, comfy: InProcessComfy, cuda: bool):
        self.comfy = comfy
        self.cuda = cuda
        self.seed = 1000

    def next_seed(self) -> int:
        self.seed += 1000  # a fresh seed per run: nothing upstream of the outputs is cached
        return self.seed

    def sync(self) -> None:
        if self.cuda:
            torch.cuda.synchronize()

    def run(self, prompt: dict, sampler_nodes) -> float:
        """Wall time of one prompt; raises if ComfyUI served any sampler node from its cache."""
        self.sync()
        t0 = time.perf_counter()
        result = self.comfy.run(prompt)
        self.sync()
        seconds = time.perf_counter() - t0
        cached = set()
        for kind, data in result.status_messages:
            if kind == "execution_cached":
                cached.update(data.get("nodes", []))
        stale = cached.intersection(sampler_nodes)
        if stale:
            raise RuntimeError(f"ComfyUI served {sorted(stale)} from its cache: the timing would be void")
        return seconds

    def eacps(self, spec: ModelSpec, n: int, sub_batch: int) -> float:
        return self.run(eacps_prompt(spec, n, sub_batch, self.next_seed()), SAMPLED_EACPS)

    def stock(self, spec: ModelSpec, batches: list[int]) -> float:
        prompt, samplers = stock_prompt(spec, batches, self.next_seed())
        return self.run(prompt, samplers)


def summary(times: list[float]) -> dict:
    return {"median_s": statistics.median(times), "min_s": min(times), "max_s": max(times),
            "n": len(times), "all_s": [round(t, 6) for t in times]}


def interleaved(methods: dict, reps: int) -> dict:
    """Run every method once (warm-up, discarded), then ``reps`` rounds of all methods in turn,
    rotating the order each round so no method always follows the same one."""
    names = list(methods)
    for name in names:
        methods[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            times[name].append(methods[name]())
    return {name: summary(t) for name, t in times.items()}


# ----------------------------------------------------------------------------------- part 1


def part_overhead(b: Bench, spec: ModelSpec, n: int, sub_batches: list[int], reps: int) -> dict:
    """(a) EACPS at S, (b) N x batch 1, (c) stock batches of S, and (c=) stock with EACPS's own
    batch schedule at S (what 'EACPS within 5 % of (c) at the same sub-batch' compares)."""
    methods = {"b_stock_one_by_one": lambda: b.stock(spec, [1] * n)}
    schedules = {}
    for s in sub_batches:
        schedules[str(s)] = {"eacps": eacps_schedule(n, s), "stock_batched": chunks(n, s)}  # str: JSON keys
        methods[f"a_eacps_S{s}"] = lambda s=s: b.eacps(spec, n, s)
        if s > 1:  # at S = 1 the stock batched graph is (b) itself
            methods[f"c_stock_batched_S{s}"] = lambda s=s: b.stock(spec, chunks(n, s))
        if s > 1 and eacps_schedule(n, s) != chunks(n, s):
            methods[f"c_matched_S{s}"] = lambda s=s: b.stock(spec, eacps_schedule(n, s))
    res = interleaved(methods, reps)
    ratios = {}
    t_b = res["b_stock_one_by_one"]["median_s"]
    for s in sub_batches:
        t_a = res[f"a_eacps_S{s}"]["median_s"]
        t_c = res.get(f"c_stock_batched_S{s}", res["b_stock_one_by_one"])["median_s"]
        t_m = res.get(f"c_matched_S{s}", res.get(f"c_stock_batched_S{s}", res["b_stock_one_by_one"]))["median_s"]
        ratios[f"S{s}"] = {
            "eacps_over_b": t_a / t_b, "b_over_eacps_speedup": t_b / t_a,
            "eacps_over_c": t_a / t_c, "eacps_over_c_matched": t_a / t_m,
            "c_matched_is_c": eacps_schedule(n, s) == chunks(n, s),
        }
    k_global, m, k_local = split(n)
    return {"n": n, "split": f"{k_global} + {m}*{k_local} = {n}", "reps": reps, "schedules": schedules,
            "times": res, "ratios": ratios}


# ----------------------------------------------------------------------------------- part 3


def part_memory(b: Bench, spec: ModelSpec, n: int, sub_batch: int, searches: int) -> dict:
    out: dict = {"sub_batch": sub_batch, "n": n}
    if b.cuda:
        peak = {}
        for name, fn in (("eacps", lambda: b.eacps(spec, n, sub_batch)),
                         ("stock_ksampler", lambda: b.stock(spec, [sub_batch]))):
            fn()  # warm: models loaded, so the peak is the working memory of this graph
            gc.collect()
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats()
            before = torch.cuda.memory_allocated()
            fn()
            peak[name] = {"peak_allocated_mb": torch.cuda.max_memory_allocated() / 2**20,
                          "allocated_before_mb": before / 2**20,
                          "peak_over_before_mb": (torch.cuda.max_memory_allocated() - before) / 2**20}
        peak["ratio_peak_over_before"] = (peak["eacps"]["peak_over_before_mb"]
                                          / max(peak["stock_ksampler"]["peak_over_before_mb"], 1e-9))
        out["vram"] = peak
    else:
        out["vram"] = "n/a: no CUDA device"
    if searches < 2:
        out["rss"] = "skipped: fewer than 2 searches asked (--leak-searches)"
        return out
    proc = psutil.Process()
    rss, vram = [], []
    b.eacps(spec, n, sub_batch)  # warm-up
    for _ in range(searches):
        b.eacps(spec, n, sub_batch)
        gc.collect()  # what survives a collection is held: a leak, not garbage waiting
        rss.append(proc.memory_info().rss / 2**20)
        if b.cuda:
            vram.append(torch.cuda.memory_allocated() / 2**20)
    slope, intercept = fit_line(list(range(1, searches + 1)), rss)
    # A leak of the search's own results would hold at least one pool per search: N candidate
    # images (float32 RGB) plus their latents. Half of that per search is the verdict's threshold;
    # allocator noise on a steady process is far below it (pages come and go in 4 KB-1 MB steps
    # without a trend).
    pool_mb = n * (spec.width * spec.height * 3 * 4 + spec.latent_channels * (spec.width // 8)
                   * (spec.height // 8) * 4) / 2**20
    threshold = 0.5 * pool_mb
    out["rss"] = {
        "searches": searches, "start_mb": rss[0], "end_mb": rss[-1], "max_mb": max(rss),
        "slope_mb_per_search": slope, "pool_payload_mb": pool_mb, "leak_threshold_mb_per_search": threshold,
        "leak": slope > threshold, "series_mb": [round(x, 2) for x in rss],
    }
    if vram:
        vslope, _ = fit_line(list(range(1, searches + 1)), vram)
        out["vram_allocated_series_mb"] = [round(x, 2) for x in vram]
        out["vram_slope_mb_per_search"] = vslope
    return out


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return slope, my - slope * mx


# ----------------------------------------------------------------------------------- part 4


def part_scaling(b: Bench, spec: ModelSpec, ns: list[int], sub_batch: int, reps: int) -> dict:
    methods = {}
    for n in ns:
        methods[f"a_eacps_N{n}"] = lambda n=n: b.eacps(spec, n, sub_batch)
        methods[f"b_stock_one_by_one_N{n}"] = lambda n=n: b.stock(spec, [1] * n)
        methods[f"c_stock_batched_N{n}"] = lambda n=n: b.stock(spec, chunks(n, sub_batch))
    res = interleaved(methods, reps)
    fits = {}
    for key, label in (("a", "a_eacps"), ("b", "b_stock_one_by_one"), ("c", "c_stock_batched")):
        ts = [res[f"{label}_N{n}"]["median_s"] for n in ns]
        slope, intercept = fit_line(ns, ts)
        pred = [intercept + slope * n for n in ns]
        fits[key] = {
            "method": label, "n": ns, "median_s": ts, "fit_intercept_s": intercept, "fit_s_per_candidate": slope,
            "max_rel_residual": max(abs(t - p) / t for t, p in zip(ts, pred, strict=True)),
            "per_candidate_ratio_last_over_first": (ts[-1] / ns[-1]) / (ts[0] / ns[0]),
        }
    return {"sub_batch": sub_batch, "splits": {str(n): "{} + {}*{}".format(*split(n)) for n in ns}, "reps": reps,
            "times": res, "fits": fits}


# ----------------------------------------------------------------------------------- part 2


def verifier_specs(folder: Path, real_archs: list[str], tiny: str, cuda: bool) -> list[tuple[str, str, dict, bool]]:
    """(label, loader node, inputs, needs a reference), writing the random-weight files needed."""
    from verifier_models import (
        TINY_CLIP,
        register_tiny_open_clip,
        write_aesthetic_head,
        write_dinov2,
        write_hps,
        write_open_clip,
        write_tiny_imagereward,
        write_tiny_pickscore,
        write_tiny_qwen2_vl,
    )

    specs = [("technical (weight-free, native size)", "EACPS_LoadTechnicalVerifier", {"size": 0}, False)]
    if tiny in ("min", "all"):
        register_tiny_open_clip(folder.parent / "open_clip_configs")
        write_open_clip(folder / "tiny_clip.safetensors")
        specs.append(("clip_score (tiny)", "EACPS_LoadClipScoreVerifier",
                      {"arch": TINY_CLIP, "weights": "tiny_clip.safetensors"}, False))
    if tiny == "all":
        write_aesthetic_head(folder / "tiny_aesthetic_head.pth", input_size=32)
        write_dinov2(folder / "tiny_dinov2")
        write_tiny_pickscore(folder / "tiny_pickscore")
        write_tiny_imagereward(folder / "tiny_imagereward")
        write_hps(folder / "tiny_hps.pt")
        write_tiny_qwen2_vl(folder / "tiny_qwen2vl")
        specs += [
            ("aesthetic (tiny)", "EACPS_LoadAestheticVerifier",
             {"clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors", "head_weights": "tiny_aesthetic_head.pth"},
             False),
            ("pickscore (tiny)", "EACPS_LoadPickScoreVerifier", {"model_folder": "tiny_pickscore"}, False),
            ("hpsv2 (tiny)", "EACPS_LoadHPSv2Verifier", {"arch": TINY_CLIP, "weights": "tiny_hps.pt", "download": False},
             False),
            ("imagereward (tiny)", "EACPS_LoadImageRewardVerifier",
             {"model_folder": "tiny_imagereward", "checkpoint": "ImageReward.pt", "download": False}, False),
            ("preservation dinov2 (tiny)", "EACPS_LoadPreservationVerifier",
             {"aspect": "preservation", "backbone": "dinov2", "dinov2_folder": "tiny_dinov2", "clip_arch": TINY_CLIP,
              "clip_weights": "tiny_clip.safetensors", "ssim_weight": 0.5}, True),
            ("vlm_judge (tiny Qwen2-VL)", "EACPS_LoadVLMJudgeVerifier",
             {"model_folder": "tiny_qwen2vl", "aspects": "prompt_adherence, realism", "max_batch": 20}, False),
        ]
    for arch in real_archs:
        fname = f"random_{arch}.safetensors"
        write_open_clip(folder / fname, arch=arch)
        specs.append((f"clip_score ({arch}, random weights)", "EACPS_LoadClipScoreVerifier",
                      {"arch": arch, "weights": fname}, False))
        if cuda and arch == "ViT-L-14":
            write_aesthetic_head(folder / "random_head_768.pth", input_size=768)
            specs.append((f"aesthetic ({arch} + head, random weights)", "EACPS_LoadAestheticVerifier",
                          {"clip_arch": arch, "clip_weights": fname, "head_weights": "random_head_768.pth"}, False))
        if cuda and arch == "ViT-H-14":
            write_hps(folder / "random_hps_h14.pt", arch=arch)
            specs.append((f"hpsv2 ({arch}, random weights)", "EACPS_LoadHPSv2Verifier",
                          {"arch": arch, "weights": "random_hps_h14.pt", "download": False}, False))
    return specs


def part_verifiers(b: Bench, size: tuple[int, int], n: int, reps: int, real_archs: list[str], tiny: str,
                   sampling_s: dict[str, float]) -> dict:
    folder = b.comfy.base_dir / "models" / "verifiers"
    folder.mkdir(parents=True, exist_ok=True)
    captured = sys.modules[b.comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_Capture"].__module__].CAPTURED
    gen = torch.Generator().manual_seed(0)
    images = torch.rand(n, size[1], size[0], 3, generator=gen)
    reference = torch.rand(1, size[1], size[0], 3, generator=gen)
    prompt = "a red apple on a wooden table"
    rows = {}
    for label, loader, inputs, needs_ref in verifier_specs(folder, real_archs, tiny, b.cuda):
        t0 = time.perf_counter()
        b.comfy.run({"load": {"class_type": loader, "inputs": inputs},
                     "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "bench_v"}}})
        verifier = captured["bench_v"]
        ref = reference if needs_ref else None
        load_s = time.perf_counter() - t0

        def batched(verifier=verifier, ref=ref):
            b.sync()
            t = time.perf_counter()
            verifier.score(images, prompt, ref)
            b.sync()
            return time.perf_counter() - t

        def singly(verifier=verifier, ref=ref):
            b.sync()
            t = time.perf_counter()
            for i in range(n):
                verifier.score(images[i:i + 1], prompt, ref)
            b.sync()
            return time.perf_counter() - t

        res = interleaved({"batched": batched, "one_by_one": singly}, reps)
        t_b, t_1 = res["batched"]["median_s"], res["one_by_one"]["median_s"]
        rows[label] = {
            "loader": loader, "inputs": inputs, "load_s": load_s, "images": n, "image_size": list(size),
            "batched": res["batched"], "one_by_one": res["one_by_one"], "batching_speedup": t_1 / t_b,
            "fraction_of_sampling": {m: t_b / (s * n) for m, s in sampling_s.items()},
        }
        del verifier
        captured.pop("bench_v", None)
        gc.collect()
    return {"n_images": n, "reps": reps, "sampling_s_per_candidate": sampling_s,
            "not_measured": {"api_judge": "a remote endpoint: its cost is the endpoint's latency, not this machine's"},
            "rows": rows}


# ----------------------------------------------------------------------------------- output


def device_info(cuda: bool) -> tuple[str, str]:
    if cuda:
        name = torch.cuda.get_device_name(0)
        return name, "cuda-" + re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)", f"cpu-{os.cpu_count()}core"


def meta(cuda: bool, argv: list[str]) -> dict:
    import comfyui_version  # ComfyUI's own version module, on sys.path once the host booted

    device, slug = device_info(cuda)
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=False).stdout.strip()
    except OSError:
        commit = ""
    return {
        "device": device, "device_slug": slug, "cuda": cuda, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
        "comfyui": comfyui_version.__version__, "python": platform.python_version(), "platform": platform.platform(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": commit, "command": "./bench/run.sh " + " ".join(argv),
        "note": "CPU timings on a machine shared with other work are noisy: medians of interleaved repetitions",
    }


def write_outputs(results: dict, out_dir: Path) -> None:
    from report import markdown, plot_scaling

    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    (out_dir / "results.md").write_text(markdown(results))
    plot_scaling(results, out_dir / "time_vs_n.png")


# ----------------------------------------------------------------------------------- main


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument("--gpu", action="store_true", help="real architectures on CUDA (default when CUDA is available)")
    mode.add_argument("--cpu", action="store_true", help="force the CPU run even where CUDA is available")
    ap.add_argument("--smoke", action="store_true", help="real-architecture path at tiny sizes, 1 step, N=2")
    ap.add_argument("--quick", action="store_true", help="smallest run of every part (for the test)")
    ap.add_argument("--models", nargs="+", help=f"GPU models (default all: {sorted(GPU_MODELS)})")
    ap.add_argument("--parts", nargs="+", default=["overhead", "verifiers", "memory", "scaling"],
                    choices=["overhead", "verifiers", "memory", "scaling"])
    ap.add_argument("--n", type=int, help="candidates for parts 1-3 (default 20; GPU FLUX 8)")
    ap.add_argument("--sub-batches", type=int, nargs="+", help="S values (default 1 8 20; FLUX 1 4)")
    ap.add_argument("--reps", type=int, help="timed repetitions per method (default 5 CPU, 3 GPU)")
    ap.add_argument("--scaling-n", type=int, nargs="+", default=None, help="N values of part 4 (default 8 20 50)")
    ap.add_argument("--leak-searches", type=int, default=None, help="searches in the RSS check (default 30)")
    ap.add_argument("--clip-archs", nargs="+", default=None,
                    help="real-size open_clip archs with random weights (default CPU ViT-B-32; GPU ViT-L-14 ViT-H-14)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch CPU threads (default: 1 for CPU runs, torch's own for CUDA; 0: torch's own). On a "
                         "small shared machine one thread avoids OpenMP stalls while another process holds a core")
    ap.add_argument("--out", type=Path,
                    help="results folder (default bench/results/<device-slug>[-smoke]; --quick: bench/results/tmp/)")
    return ap.parse_args(argv)


def plan(args: argparse.Namespace, cuda: bool) -> list[dict]:
    """One entry per model: its spec and the settings of each part."""
    if args.quick:
        return [{"spec": TINY, "n": 4, "sub_batches": [2], "reps": 1, "scaling_n": [2, 4], "leak": 3}]
    if args.smoke:
        return [{"spec": s, "n": 2, "sub_batches": [2], "reps": 1, "scaling_n": [], "leak": 2}
                for s in SMOKE_MODELS.values()]
    if not cuda:
        return [{"spec": TINY, "n": args.n or 20, "sub_batches": args.sub_batches or [1, 8, 20],
                 "reps": args.reps or 5, "scaling_n": args.scaling_n or [8, 20, 50], "leak": args.leak_searches or 30}]
    entries = []
    for name in args.models or list(GPU_MODELS):
        flux = name == "flux"
        entries.append({"spec": GPU_MODELS[name], "n": args.n or (8 if flux else 20),
                        # SDXL at 1024 px: a batch of 20 may not fit; S = 8 gives (c) = EACPS's 8+8+4
                        "sub_batches": args.sub_batches or ([1, 4] if flux else [1, 8] if name == "sdxl" else [1, 8, 20]),
                        "reps": args.reps or (2 if flux else 3),
                        "scaling_n": args.scaling_n or ([] if name != "sd15" else [8, 20, 50]),
                        # the RSS leak check once (SD1.5); peak VRAM for every model
                        "leak": args.leak_searches or (30 if name == "sd15" else 0)})
    return entries


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cuda = torch.cuda.is_available() and not args.cpu and not (args.quick and not args.gpu)
    if args.gpu and not torch.cuda.is_available():
        print("--gpu: torch sees no CUDA device", file=sys.stderr)
        return 2
    _, slug = device_info(cuda)
    if args.quick:  # no meaningful numbers: kept out of git (bench/results/tmp/ is ignored)
        out_dir = args.out or BENCH / "results" / "tmp" / (slug + "-quick")
    else:
        out_dir = args.out or BENCH / "results" / (slug + ("-smoke" if args.smoke else ""))

    threads = args.threads if args.threads is not None else (0 if cuda else 1)
    if threads:
        torch.set_num_threads(threads)
    base = make_base_dir(Path(tempfile.mkdtemp(prefix="eacps_bench_")))
    comfy = InProcessComfy(base, cpu=not cuda)
    logging.getLogger().setLevel(logging.ERROR)
    b = Bench(comfy, cuda)
    entries = plan(args, cuda)

    results: dict = {}
    if cuda and (out_dir / "results.json").is_file() and args.models:
        results = json.loads((out_dir / "results.json").read_text())  # merge one-model-per-command runs
    results["meta"] = meta(cuda, argv)
    results.setdefault("models", {})
    results["settings"] = {
        "parts": args.parts, "mode": "smoke" if args.smoke else "quick" if args.quick else "gpu" if cuda else "cpu",
        "eacps": "two-stage: SeedSearchGlobal -> technical verifier -> potential -> EliteSelect(M) -> "
                 "LocalSeedRefine(K_local, slerp 0.6) -> technical verifier -> potential -> EliteSelect(1)",
        "stock": "KSampler + VAEDecode per latent batch; same model, steps, cfg, euler/normal, size, VAE",
        "outputs": "every method ends in a Capture node (no PNG encoding timed)",
        "warmup": "one run of every method before timing; methods interleaved, order rotated per repetition",
    }
    sampling_basis: dict[str, float] = {}
    for entry in entries:
        spec: ModelSpec = entry["spec"]
        t_model = time.perf_counter()
        row = results["models"].setdefault(spec.name, {})
        row["spec"] = spec.describe()
        row["command"] = results["meta"]["command"]  # GPU runs may merge several commands into one file
        print(f"[bench] {spec.name}: {spec.width}x{spec.height}, {spec.steps} steps, N={entry['n']}", flush=True)
        if "overhead" in args.parts:
            row["overhead"] = part_overhead(b, spec, entry["n"], entry["sub_batches"], entry["reps"])
            s_ref = 8 if 8 in entry["sub_batches"] else max(entry["sub_batches"])
            key = f"c_stock_batched_S{s_ref}" if s_ref > 1 else "b_stock_one_by_one"
            # per candidate, so it scales to the verifier part's image count
            sampling_basis[f"{spec.name}: stock batched S={s_ref}"] = \
                row["overhead"]["times"][key]["median_s"] / entry["n"]
            print(f"[bench]   overhead done ({time.perf_counter() - t_model:.0f} s)", flush=True)
        if "memory" in args.parts:
            s_mem = 8 if 8 in entry["sub_batches"] else max(entry["sub_batches"])
            row["memory"] = part_memory(b, spec, entry["n"], s_mem, entry["leak"])
            print(f"[bench]   memory done ({time.perf_counter() - t_model:.0f} s)", flush=True)
        if "scaling" in args.parts and entry["scaling_n"]:
            s_scale = 8 if not args.quick else 2
            reps_scale = min(entry["reps"], 2) if cuda else entry["reps"]  # N=50 one by one is slow on a GPU
            row["scaling"] = part_scaling(b, spec, entry["scaling_n"], s_scale, reps_scale)
            print(f"[bench]   scaling done ({time.perf_counter() - t_model:.0f} s)", flush=True)
        row["seconds_total"] = time.perf_counter() - t_model
        if cuda:
            import comfy.model_management as mm

            mm.unload_all_models()
            gc.collect()
            mm.soft_empty_cache()
    if "verifiers" in args.parts:
        t0 = time.perf_counter()
        for name, row in results["models"].items():  # models timed by an earlier, merged command
            times = row.get("overhead", {}).get("times", {})
            key = "c_stock_batched_S8" if "c_stock_batched_S8" in times else "b_stock_one_by_one"
            if not any(k.startswith(name + ":") for k in sampling_basis) and key in times:
                sampling_basis[f"{name}: {key.replace('_', ' ')} (earlier command)"] = \
                    times[key]["median_s"] / row["overhead"]["n"]
        first = entries[0]["spec"]
        if args.quick:
            archs, tiny_v, n_v, reps_v = [], "min", 4, 1
        elif args.smoke:
            archs, tiny_v, n_v, reps_v = [], "", 2, 1
        else:
            archs = args.clip_archs if args.clip_archs is not None else (["ViT-L-14", "ViT-H-14"] if cuda else ["ViT-B-32"])
            tiny_v, n_v, reps_v = "" if cuda else "all", 20, 3
        size = (first.width, first.height) if first.arch else (TINY.width, TINY.height)
        results["verifiers"] = part_verifiers(b, size, n_v, reps_v, archs, tiny_v, sampling_basis)
        results["verifiers"]["note"] = (
            "fraction = batched scoring time / stock batched sampling+decode time of as many candidates of that "
            "model in this run. "
            + ("Smoke mode: checks that the code runs; no figure here means anything." if args.smoke else
               "On the tiny CPU model that fraction is meaningless (a 1 M-parameter UNet at 64 px against "
               "verifiers at 224 px); only the GPU run with real sizes is informative." if not cuda else ""))
        print(f"[bench] verifiers done ({time.perf_counter() - t0:.0f} s)", flush=True)
    results.setdefault("verifiers", {})
    write_outputs(results, out_dir)
    print(f"[bench] wrote {out_dir.relative_to(REPO) if out_dir.is_relative_to(REPO) else out_dir}", flush=True)
    print((out_dir / "results.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
