"""Train the lab world's judges E (held-out evaluator) and V (search verifier); run once, never in CI.

    .venv/bin/python lab/train_judges.py            # both (minutes on 2 CPU cores)
    .venv/bin/python lab/train_judges.py --only E   # one of them

E and V differ in architecture (segmenting U-Net + connected components + the world's rule, vs. an
attention image-text matcher with a learned head), supervision (E: per-pixel classes; V: match /
no-match labels plus heat maps around object centroids, no pixel labels), training data (scenes
rendered from different seeds, different mixes), augmentations (E: warps, blur, noise, colour
shifts; V: translations, down-up resampling, uniform noise, contrast/gamma), and torch seeds. Both see only ``world.judge_train_prompts()``: the
benchmark's prompts are held out from both. At the end E is measured on ground-truth renders of the
held-out prompts (positives: renders of the prompt; negatives: renders of its near misses, labelled
by the renderer's own objects and ``world.satisfies``, independent of E) and V on the same cases.
Writes lab/weights/judge_e.safetensors, judge_v.safetensors and train_log.json / train_log.md.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

LAB = Path(__file__).resolve().parent
sys.path.insert(0, str(LAB))

import judges  # noqa: E402
import world  # noqa: E402

E_RENDER_SEED, V_RENDER_SEED, EVAL_RENDER_SEED = 101, 202, 303
E_TORCH_SEED, V_TORCH_SEED = 11, 22
OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


# ------------------------------------------------------------------------------------- scenes


def random_placements(rng: np.random.Generator, count: int) -> list[world.Placement]:
    """``count`` random objects (any colour/shape, sizes as the renderer's), bounding boxes apart."""
    for _ in range(1000):
        out = []
        for _ in range(count):
            size = int(rng.integers(world.MIN_OBJECT_SIZE, world.MAX_OBJECT_SIZE + 1))
            cx, cy = (float(np.round(v)) for v in rng.uniform(size / 2 + 1, world.SIZE - size / 2 - 1, size=2))
            colour, shape = judges.OBJECTS[int(rng.integers(len(judges.OBJECTS)))]
            out.append(world.Placement(colour, shape, cx, cy, size))
        if all(abs(p.cx - q.cx) >= (p.size + q.size) / 2 + 2 or abs(p.cy - q.cy) >= (p.size + q.size) / 2 + 2
               for i, p in enumerate(out) for q in out[i + 1:]):
            return out
    raise RuntimeError("could not place objects")


def scene(rng: np.random.Generator, prompts: list[str], p_prompt: float) -> tuple[np.ndarray, list, str | None]:
    """A training picture: with probability ``p_prompt`` a render of a random prompt, else one or
    three random objects (failure modes of generated pictures: a missing or an extra object)."""
    if rng.random() < p_prompt:
        prompt = prompts[int(rng.integers(len(prompts)))]
        image, objects = world.render_scene(prompt, rng)
        return image, objects, prompt
    image, objects = world.draw(random_placements(rng, 1 if rng.random() < 0.4 else 3))
    return image, objects, None


def label_map(image: np.ndarray, objects: list) -> np.ndarray:
    """Per-pixel class ids (``judges.CLASSES``) of a clean picture: exact object colours, split into
    connected components, each given the shape of the nearest object of that colour."""
    labels = np.zeros(image.shape[:2], np.int64)
    for ci, colour in enumerate(judges.COLOURS):
        comps, n = ndimage.label(np.all(image == world.COLOURS[colour], axis=-1))
        candidates = [o for o in objects if o.colour == colour]
        for k in range(1, n + 1):
            ys, xs = np.nonzero(comps == k)
            o = min(candidates, key=lambda o: (o.x - xs.mean()) ** 2 + (o.y - ys.mean()) ** 2)
            labels[comps == k] = 1 + ci * len(judges.SHAPES) + judges.SHAPES.index(o.shape)
    return labels


def near_misses(prompt: str) -> list[tuple[str, str]]:
    """(kind, prompt) of every prompt that differs from ``prompt`` in one way: "reversed relation",
    "swapped colours" (when the colours differ), "changed shape", "changed colour"; only prompts
    inside the grammar."""
    s = world.parse_prompt(prompt)
    (c1, s1), (c2, s2) = s.obj1, s.obj2
    out = [("reversed relation", world.Scene(s.obj1, OPPOSITE[s.relation], s.obj2))]
    out.append(("swapped colours", world.Scene((c2, s1), s.relation, (c1, s2))))
    out += [("changed shape", world.Scene((c1, t), s.relation, (c2, s2))) for t in judges.SHAPES if t != s1]
    out += [("changed shape", world.Scene((c1, s1), s.relation, (c2, t))) for t in judges.SHAPES if t != s2]
    out += [("changed colour", world.Scene((c, s1), s.relation, (c2, s2))) for c in judges.COLOURS if c != c1]
    out += [("changed colour", world.Scene((c1, s1), s.relation, (c, s2))) for c in judges.COLOURS if c != c2]
    valid = []
    for kind, sc in out:
        q = world.prompt_of(sc)
        try:
            world.parse_prompt(q)
        except ValueError:
            continue
        if q != prompt and q not in [v for _, v in valid]:
            valid.append((kind, q))
    return valid


# ------------------------------------------------------------------------------ augmentations


def _blur(x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of [B, C, H, W] with a per-image sigma (pixels; 0 leaves the image)."""
    r = 3
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-t[None] ** 2 / (2 * sigma.clamp_min(1e-3)[:, None] ** 2))
    k = k / k.sum(1, keepdim=True)  # [B, 7]
    b, c, h, w = x.shape
    k = k.repeat_interleave(c, 0)
    y = F.conv2d(F.pad(x.reshape(1, b * c, h, w), (r, r, 0, 0), mode="replicate"), k[:, None, None, :], groups=b * c)
    y = F.conv2d(F.pad(y, (0, 0, r, r), mode="replicate"), k[:, None, :, None], groups=b * c)
    return y.reshape(b, c, h, w)


def augment_e(x: torch.Tensor, y: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """E's augmentations: horizontal flip, smooth warp (affine +-8 % scale, +-3 px shift, a coarse
    random displacement field: slight shape distortion), blur, colour gain/offset/desaturation, noise.
    x: float [B, 3, 64, 64]; y: long [B, 64, 64] class ids, warped with the image."""
    b = x.shape[0]
    flip = torch.rand(b, generator=g) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    y = torch.where(flip[:, None, None], y.flip(-1), y)
    scale = 1 + (torch.rand(b, generator=g) - 0.5) * 0.16
    shift = (torch.rand(b, 2, generator=g) - 0.5) * 2 * (3 / 32)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = scale
    theta[:, :, 2] = shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    field = (torch.rand(b, 2, 4, 4, generator=g) - 0.5) * 2 * (1.5 / 32)
    grid = grid + F.interpolate(field, size=x.shape[-2:], mode="bicubic", align_corners=False).permute(0, 2, 3, 1)
    x = F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)
    y = F.grid_sample(y[:, None].float(), grid, mode="nearest", padding_mode="border", align_corners=False)[:, 0].long()
    sigma = torch.rand(b, generator=g) * 1.6 * (torch.rand(b, generator=g) < 0.8)
    x = _blur(x, sigma)
    grey = x.mean(1, keepdim=True)
    x = x + (grey - x) * torch.rand(b, 1, 1, 1, generator=g) * 0.3
    x = x * (1 + (torch.rand(b, 3, 1, 1, generator=g) - 0.5) * 0.3) + (torch.rand(b, 3, 1, 1, generator=g) - 0.5) * 0.14
    x = x + torch.randn(x.shape, generator=g) * torch.rand(b, 1, 1, 1, generator=g) * 0.07
    return x.clamp(0, 1), y


def augment_v(x: torch.Tensor, g: torch.Generator) -> tuple[torch.Tensor, tuple[int, int]]:
    """V's augmentations (other than E's): a shift of up to 3 px (edges replicated; returned as
    (dx, dy): content moves by -dx, -dy), down-up resampling by 2 or 4 (the softness of decoded
    latents), contrast/gamma jitter, uniform noise."""
    b = x.shape[0]
    dx, dy = (int(v) for v in torch.randint(-3, 4, (2,), generator=g))
    x = F.pad(x, (3, 3, 3, 3), mode="replicate")[:, :, 3 + dy:3 + dy + world.SIZE, 3 + dx:3 + dx + world.SIZE]
    factor = int(torch.randint(0, 3, (1,), generator=g))
    if factor:
        small = F.interpolate(x, scale_factor=1 / 2 ** factor, mode="area")
        x = torch.lerp(x, F.interpolate(small, size=x.shape[-2:], mode="bilinear", align_corners=False),
                       torch.rand(b, 1, 1, 1, generator=g))
    gamma = torch.exp((torch.rand(b, 1, 1, 1, generator=g) - 0.5) * 0.5)
    x = x.clamp(1e-4, 1) ** gamma
    mean = x.mean((1, 2, 3), keepdim=True)
    x = mean + (x - mean) * (0.8 + 0.4 * torch.rand(b, 1, 1, 1, generator=g))
    x = x + (torch.rand(x.shape, generator=g) - 0.5) * 2 * torch.rand(b, 1, 1, 1, generator=g) * 0.1
    return x.clamp(0, 1), (dx, dy)


def heat_targets(objects_per_image: list[list], shift: tuple[int, int], side: int = world.SIZE // 4,
                 sigma: float = 0.8) -> torch.Tensor:
    """[B, 12, side * side] heat maps: for each object class, exp(-d^2 / 2 sigma^2) (d in cells of 4
    px) around the centroids of that class's objects, after V's shift augmentation."""
    cell = world.SIZE / side
    centres = (torch.arange(side, dtype=torch.float32) + 0.5) * cell - 0.5  # pixel-centre coordinates
    ys, xs = torch.meshgrid(centres, centres, indexing="ij")
    out = torch.zeros(len(objects_per_image), len(judges.OBJECTS), side * side)
    for b, objects in enumerate(objects_per_image):
        for o in objects:
            k = judges.OBJECTS.index((o.colour, o.shape))
            d2 = ((xs - (o.x - shift[0])) ** 2 + (ys - (o.y - shift[1])) ** 2) / cell ** 2
            out[b, k] = torch.maximum(out[b, k], torch.exp(-d2 / (2 * sigma ** 2)).flatten())
    return out


def to_tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 255.0


# ------------------------------------------------------------------------------------- training


def train_e(n_scenes: int, steps: int, batch: int, log: dict) -> torch.nn.Module:
    rng = np.random.default_rng(E_RENDER_SEED)
    prompts = world.judge_train_prompts()
    t0 = time.perf_counter()
    images, labels = [], []
    for _ in range(n_scenes):
        image, objects, _ = scene(rng, prompts, p_prompt=0.75)
        images.append(image)
        labels.append(label_map(image, objects))
    x_all, y_all = to_tensor(images), torch.from_numpy(np.stack(labels))
    print(f"E: {n_scenes} scenes rendered in {time.perf_counter() - t0:.1f} s", flush=True)
    torch.manual_seed(E_TORCH_SEED)
    g = torch.Generator().manual_seed(E_TORCH_SEED)
    net = judges.SegNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    weight = torch.ones(len(judges.CLASSES))
    weight[0] = 0.3  # background is ~90 % of the pixels
    net.train()
    t1 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, n_scenes, (batch,), generator=g)
        x, y = augment_e(x_all[idx], y_all[idx], g)
        loss = F.cross_entropy(net(x), y, weight=weight)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"E step {step}/{steps} loss {loss.item():.4f} ({time.perf_counter() - t1:.0f} s)", flush=True)
    log["E"] = {"scenes": n_scenes, "steps": steps, "batch": batch, "render_seed": E_RENDER_SEED,
                "torch_seed": E_TORCH_SEED, "final_loss": round(loss.item(), 5),
                "train_seconds": round(time.perf_counter() - t0, 1)}
    return net.eval()


def v_pairs(rng: np.random.Generator, image_objects: list, prompts: list[str], train: set[str]) -> tuple[str, float]:
    """One text for a V training picture and its label (``world.satisfies`` on the picture's true
    objects): half the time a prompt it satisfies, else a near miss of one (or a random prompt)."""
    objects, source = image_objects
    if source is not None and rng.random() < 0.5:
        return source, 1.0
    base = source or prompts[int(rng.integers(len(prompts)))]
    if rng.random() < 0.8:
        options = [q for _, q in near_misses(base) if q in train]
        text = options[int(rng.integers(len(options)))]
    else:
        text = prompts[int(rng.integers(len(prompts)))]
    return text, float(world.satisfies(objects, text))


def train_v(n_scenes: int, steps: int, batch: int, log: dict) -> torch.nn.Module:
    rng = np.random.default_rng(V_RENDER_SEED)
    prompts = world.judge_train_prompts()
    train = set(prompts)
    t0 = time.perf_counter()
    images, meta = [], []
    for _ in range(n_scenes):
        image, objects, prompt = scene(rng, prompts, p_prompt=0.8)
        images.append(image)
        meta.append((objects, prompt))
    x_all = to_tensor(images)
    print(f"V: {n_scenes} scenes rendered in {time.perf_counter() - t0:.1f} s", flush=True)
    torch.manual_seed(V_TORCH_SEED)
    g = torch.Generator().manual_seed(V_TORCH_SEED)
    net = judges.MatchNet()
    opt = torch.optim.AdamW(net.parameters(), lr=3e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    net.train()
    positives = 0.0
    t1 = time.perf_counter()
    for step in range(steps):
        idx = torch.randint(0, n_scenes, (batch,), generator=g).tolist()
        pairs = [v_pairs(rng, meta[i], prompts, train) for i in idx]
        slots = torch.tensor([judges.prompt_slots(t) for t, _ in pairs], dtype=torch.long)
        target = torch.tensor([lab for _, lab in pairs])
        positives += float(target.mean())
        x, shift = augment_v(x_all[idx], g)
        fmap = net.feature_map(x)
        match = F.binary_cross_entropy_with_logits(net.match(fmap, slots), target)
        heat = F.binary_cross_entropy_with_logits(net.object_logits(fmap), heat_targets([meta[i][0] for i in idx], shift),
                                                  pos_weight=torch.tensor(20.0))
        loss = match + heat
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            print(f"V step {step}/{steps} match loss {match.item():.4f} heat loss {heat.item():.4f} "
                  f"({time.perf_counter() - t1:.0f} s)", flush=True)
    log["V"] = {"scenes": n_scenes, "steps": steps, "batch": batch, "render_seed": V_RENDER_SEED,
                "torch_seed": V_TORCH_SEED, "final_loss": round(match.item(), 5),
                "final_heat_loss": round(heat.item(), 5), "positive_fraction": round(positives / steps, 3),
                "train_seconds": round(time.perf_counter() - t0, 1)}
    return net.eval()


# ------------------------------------------------------------------------------------ evaluation


def held_out_cases(per_prompt: int = 2) -> list[tuple[np.ndarray, str, bool, str]]:
    """Ground-truth cases on the held-out prompts: (picture, prompt, expected verdict, kind). For
    each benchmark prompt, ``per_prompt`` renders of it and renders of ``per_prompt`` of its near
    misses (relation reversed, colours swapped, a shape or a colour changed), each labelled by
    ``world.satisfies`` on the renderer's own objects."""
    rng = np.random.default_rng(EVAL_RENDER_SEED)
    cases = []
    for prompt in world.benchmark_prompts():
        for _ in range(per_prompt):
            image, objects = world.render_scene(prompt, rng)
            cases.append((image, prompt, world.satisfies(objects, prompt), "positive"))
        misses = near_misses(prompt)
        by_kind = {}
        for kind, q in misses:
            by_kind.setdefault(kind, []).append(q)
        # one of each kind the prompt has, then random others up to 2 * per_prompt negatives
        picks = [(kind, qs[int(rng.integers(len(qs)))]) for kind, qs in by_kind.items()]
        rest = [m for m in misses if m not in picks]
        picks += [rest[int(i)] for i in rng.choice(len(rest), 2 * per_prompt - len(picks), replace=False)]
        for kind, q in picks[:2 * per_prompt]:
            image, objects = world.render_scene(q, rng)
            cases.append((image, prompt, world.satisfies(objects, prompt), kind))
    return cases


def evaluate(e_net, v_net, cases) -> dict:
    images = torch.from_numpy(np.stack([c[0] for c in cases])).float() / 255.0  # [N, 64, 64, 3]
    expected = np.array([c[2] for c in cases])
    e_verdict, v_prob = [], []
    for i, (_, prompt, _, _) in enumerate(cases):
        e_verdict.append(bool(judges.e_pass(e_net, images[i:i + 1], prompt)[0]))
        v_prob.append(float(torch.sigmoid(judges.v_logits(v_net, images[i:i + 1], prompt))[0]))
    e_verdict, v_prob = np.array(e_verdict), np.array(v_prob)
    out = {"cases": len(cases), "positives": int(expected.sum()), "negatives": int((~expected).sum()),
           "E_accuracy": float((e_verdict == expected).mean()),
           "E_accuracy_positives": float(e_verdict[expected].mean()),
           "E_accuracy_negatives": float((~e_verdict[~expected]).mean()),
           "V_accuracy_at_0.5": float(((v_prob > 0.5) == expected).mean()),
           "V_auc": _auc(v_prob[expected], v_prob[~expected])}
    kinds = sorted({c[3] for c in cases})
    out["E_accuracy_by_kind"] = {k: float(np.mean([e == x for e, x, c in zip(e_verdict, expected, cases, strict=True)
                                                   if c[3] == k])) for k in kinds}
    return out


def _auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """Probability that a random positive outranks a random negative (ties count half)."""
    diff = pos[:, None] - neg[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def degraded(cases, seed: int = 404) -> list:
    """The same cases blurred (sigma 1) with Gaussian noise (0.03): a sanity check of robustness."""
    g = torch.Generator().manual_seed(seed)
    x = to_tensor([c[0] for c in cases])
    x = (_blur(x, torch.ones(x.shape[0])) + torch.randn(x.shape, generator=g) * 0.03).clamp(0, 1)
    arr = (x.permute(0, 2, 3, 1).numpy() * 255).round().astype(np.uint8)
    return [(arr[i], *c[1:]) for i, c in enumerate(cases)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", choices=["E", "V"], help="train one judge (the other is loaded from its file)")
    ap.add_argument("--e-scenes", type=int, default=4000)
    ap.add_argument("--e-steps", type=int, default=600)
    ap.add_argument("--v-scenes", type=int, default=6000)
    ap.add_argument("--v-steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=48)
    ap.add_argument("--out", type=Path, default=judges.WEIGHTS)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch CPU threads (1: on a shared 2-core machine one thread ran ~10x faster than two)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    log_path = args.out / "train_log.json"
    log = json.loads(log_path.read_text()) if log_path.is_file() else {}
    command = ("python lab/train_judges.py " + " ".join(sys.argv[1:])).strip()
    host = {"python": platform.python_version(), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "started": time.strftime("%Y-%m-%d %H:%M:%S")}
    log["last_command"] = command
    if args.only in (None, "E"):
        e_net = train_e(args.e_scenes, args.e_steps, args.batch, log)
        log["E"].update(command=command, host=host)
        judges.save(e_net, args.out / "judge_e.safetensors", {"args": {}, "classes": list(judges.CLASSES)})
    if args.only in (None, "V"):
        v_net = train_v(args.v_scenes, args.v_steps, args.batch, log)
        log["V"].update(command=command, host=host)
        judges.save(v_net, args.out / "judge_v.safetensors", {"args": {}})
    e_net = judges.load("E", args.out / "judge_e.safetensors")
    v_net = judges.load("V", args.out / "judge_v.safetensors")
    cases = held_out_cases()
    log["held_out"] = evaluate(e_net, v_net, cases)
    log["held_out_blurred_noisy"] = evaluate(e_net, v_net, degraded(cases))
    log["files"] = {p.name: p.stat().st_size for p in sorted(args.out.glob("judge_*.safetensors"))}
    log_path.write_text(json.dumps(log, indent=2) + "\n")
    write_markdown(log, args.out / "train_log.md")
    print(json.dumps({k: log[k] for k in ("held_out", "held_out_blurred_noisy", "files")}, indent=2))
    if not math.isfinite(log["held_out"]["E_accuracy"]) or log["held_out"]["E_accuracy"] < 0.95:
        sys.exit(f"E is {log['held_out']['E_accuracy']:.3f} accurate on held-out renders, below the 0.95 required")


def write_markdown(log: dict, path: Path) -> None:
    h, d = log["held_out"], log["held_out_blurred_noisy"]
    lines = [
        "# Lab judges: training log", "",
        "| judge | command | started | scenes | steps x batch | render seed | torch seed | final loss | "
        "seconds (render + train) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for k in ("E", "V"):
        if k in log:
            r = log[k]
            lines.append(f"| {k} | `{r['command']}` | {r['host']['started']} (torch {r['host']['torch']}, "
                         f"{r['host']['threads']} thread) | {r['scenes']} | {r['steps']} x {r['batch']} | "
                         f"{r['render_seed']} | {r['torch_seed']} | {r['final_loss']} | {r['train_seconds']} |")
    lines += [
        "", "Both are reproduced by `python lab/train_judges.py` (the defaults; fixed seeds; the held-out check below "
        f"was run by `{log['last_command']}`).", "",
        f"Held-out check: {h['cases']} ground-truth renders of the {len(world.benchmark_prompts())} "
        f"benchmark prompts (never used in training): {h['positives']} positives (renders of the prompt), "
        f"{h['negatives']} negatives (renders of near misses: relation reversed, colours swapped, a shape or "
        "colour changed), expected verdicts from the renderer's objects and `world.satisfies`.", "",
        "| measure | clean renders | blurred (sigma 1) + noise 0.03 |", "|---|---|---|",
    ]
    for key in ("E_accuracy", "E_accuracy_positives", "E_accuracy_negatives", "V_accuracy_at_0.5", "V_auc"):
        lines.append(f"| {key} | {h[key]:.4f} | {d[key]:.4f} |")
    for kind, acc in h["E_accuracy_by_kind"].items():
        lines.append(f"| E_accuracy: {kind} | {acc:.4f} | {d['E_accuracy_by_kind'][kind]:.4f} |")
    lines += ["", "Files: " + ", ".join(f"`{k}` {v / 1024:.0f} KiB" for k, v in log["files"].items()), ""]
    path.write_text("\n".join(lines))


if __name__ == "__main__":
    main()
