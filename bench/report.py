"""results.json -> results.md (tables) and time_vs_n.png (matplotlib)."""

from __future__ import annotations

from pathlib import Path


def _s(x: float) -> str:
    return f"{x:.3f}"


def _ms(x: float) -> str:
    return f"{x * 1000:.1f}"


def markdown(r: dict) -> str:
    m = r["meta"]
    lines = [
        f"# EACPS benchmark — {m['device']}",
        "",
        f"`{m['command']}` · {m['date']} · torch {m['torch']} · ComfyUI {m['comfyui']} · Python {m['python']} · "
        f"{m['cpu_count']} CPUs (torch threads {m['torch_threads']}) · commit {m['git_commit']}",
        "",
        f"Mode: {r['settings']['mode']}. {m['note']}.",
        "",
    ]
    for name, row in r["models"].items():
        spec = row["spec"]
        lines += [f"## Model `{name}`: {spec['arch'] or 'tiny 1 M-parameter SD1.5-shaped UNet'}, "
                  f"{spec['width']}x{spec['height']} px, {spec['steps']} steps, cfg {spec['cfg']}, {spec['dtype']}, "
                  f"euler/normal, {spec['vae']}", ""]
        if "overhead" in row:
            o = row["overhead"]
            lines += [f"### 1. Search overhead and batching (N = {o['split']}, {o['reps']} reps, medians)", "",
                      "| method | sampler-call batches | median s | min s |", "|---|---|---|---|"]
            for key, t in o["times"].items():
                lines.append(f"| {key} | {_batches(o, key)} | {_s(t['median_s'])} | {_s(t['min_s'])} |")
            lines += ["", "| S | EACPS / (b) | (b) / EACPS speed-up | EACPS / (c) batches of S | "
                      "EACPS / (c=) EACPS's own schedule |", "|---|---|---|---|---|"]
            for s, q in o["ratios"].items():
                lines.append(f"| {s[1:]} | {q['eacps_over_b']:.3f} | {q['b_over_eacps_speedup']:.2f}x | "
                             f"{q['eacps_over_c']:.3f} | {q['eacps_over_c_matched']:.3f} |")
            lines.append("")
        mem = row.get("memory")
        if mem:
            rss = mem["rss"]
            lines += [f"### 3. Memory (EACPS S = {mem['sub_batch']}, N = {mem['n']})", ""]
            if isinstance(mem["vram"], dict):
                v = mem["vram"]
                lines += ["| graph | peak allocated MB | peak above resident MB |", "|---|---|---|",
                          f"| EACPS search | {v['eacps']['peak_allocated_mb']:.0f} | {v['eacps']['peak_over_before_mb']:.0f} |",
                          f"| stock KSampler, batch {mem['sub_batch']} | {v['stock_ksampler']['peak_allocated_mb']:.0f} | "
                          f"{v['stock_ksampler']['peak_over_before_mb']:.0f} |", "",
                          f"Search / stock, peak above resident: {v['ratio_peak_over_before']:.2f}.", ""]
            else:
                lines += [f"Peak VRAM: {mem['vram']}.", ""]
            if isinstance(rss, str):
                lines += [f"RSS: {rss}.", ""]
            else:
                lines += [
                    f"RSS over {rss['searches']} searches in one process: start {rss['start_mb']:.1f} MB, end "
                    f"{rss['end_mb']:.1f} MB, max {rss['max_mb']:.1f} MB; least-squares slope "
                    f"{rss['slope_mb_per_search']:+.3f} MB/search; leak threshold "
                    f"{rss['leak_threshold_mb_per_search']:.3f} MB/search (half of one search's candidate images + "
                    f"latents, {rss['pool_payload_mb']:.3f} MB): **{'LEAK' if rss['leak'] else 'no leak'}**.", ""]
        if "scaling" in row:
            sc = row["scaling"]
            splits = ", ".join(f"{n} = {s}" for n, s in sc["splits"].items())
            lines += [f"### 4. Scaling in N (S = {sc['sub_batch']}; EACPS splits {splits}; {sc['reps']} reps)", "",
                      "| method | " + " | ".join(f"N={n} s" for n in sc["fits"]["a"]["n"])
                      + " | fit s/candidate | fit intercept s | max rel. residual | per-candidate time N_max / N_min |",
                      "|---" * (len(sc["fits"]["a"]["n"]) + 5) + "|"]
            for f in sc["fits"].values():
                lines.append(f"| {f['method']} | " + " | ".join(_s(t) for t in f["median_s"])
                             + f" | {_ms(f['fit_s_per_candidate'])} ms | {_s(f['fit_intercept_s'])} | "
                             f"{f['max_rel_residual']:.1%} | {f['per_candidate_ratio_last_over_first']:.2f} |")
            lines.append("")
    v = r.get("verifiers") or {}
    if v.get("rows"):
        lines += [f"## 2. Verifier cost ({v['n_images']} images, {v['reps']} reps, medians)", "",
                  "| verifier | image px | batched ms | one-by-one ms | batching speed-up | fraction of sampling |",
                  "|---|---|---|---|---|---|"]
        for label, row in v["rows"].items():
            frac = "; ".join(f"{f:.1%} of {k}" for k, f in row["fraction_of_sampling"].items())
            lines.append(f"| {label} | {row['image_size'][0]}x{row['image_size'][1]} | {_ms(row['batched']['median_s'])} | "
                         f"{_ms(row['one_by_one']['median_s'])} | {row['batching_speedup']:.2f}x | {frac or 'n/a'} |")
        lines += ["", v.get("note", ""), ""]
        for k, why in v.get("not_measured", {}).items():
            lines.append(f"Not measured: {k} ({why}).")
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _batches(o: dict, key: str) -> str:
    n = o["n"]
    if key.startswith("b_"):
        return f"{n} x 1"
    s = key.rsplit("_S", 1)[1]
    sched = o["schedules"][s]["eacps" if key.startswith(("a_", "c_matched")) else "stock_batched"]
    return "+".join(str(x) for x in sched)


def plot_scaling(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=110)
    drawn = False
    for name, row in r["models"].items():
        sc = row.get("scaling")
        if not sc:
            continue
        for key, style in (("a", "o-"), ("b", "s--"), ("c", "^-.")):
            f = sc["fits"][key]
            label = {"a": f"(a) EACPS, S={sc['sub_batch']}", "b": "(b) stock, batch 1",
                     "c": f"(c) stock, batches of {sc['sub_batch']}"}[key]
            ax.plot(f["n"], f["median_s"], style, label=f"{name}: {label}")
            xs = [0, max(f["n"])]
            ax.plot(xs, [f["fit_intercept_s"] + f["fit_s_per_candidate"] * x for x in xs], ":", color="grey", lw=0.8)
            drawn = True
    if not drawn:
        ax.text(0.5, 0.5, "no scaling run in this mode", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("candidates N")
    ax.set_ylabel("wall time per search, s (median)")
    ax.set_title(f"Time vs N — {r['meta']['device']}", fontsize=9)
    ax.set_xlim(left=0)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
