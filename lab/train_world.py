"""Train the lab world's text-to-image model once, on the CPU, from fixed seeds.

    .venv/bin/python lab/train_world.py            # the committed run -> lab/weights/
    .venv/bin/python lab/train_world.py --smoke --out /tmp/smoke   # a 2-minute check

Stages (each seeded):
1. VAE (TAESD architecture, ``comfy.taesd.taesd``). Its full-resolution layers are expensive on a
   shared CPU, so they are *designed*, not trained: the encoder's first layers are an exact
   space-to-depth rearrangement (64x64x3 pixels -> 16x16x48), and the decoder's last layers
   upsample four colour fields (red, green, blue, yellow; 32x32) with a [1,2,1] tent blur and
   sharpen them into masks with a hard sigmoid, then paint the palette colours on the background.
   Only the 8x8-32x32 layers are trained (the 32x32 ones on FIELD_CHANNELS live channels; pixel,
   mask and field MSE, pixels near objects weighted up). The designed layers are written into the
   real TAESD weights and checked against the cheap training path to 1e-4. Unused TAESD blocks are
   exact identities (zero residual branch).
2. Text encoder + SD1.5-family UNet, trained jointly with the eps-prediction loss on ComfyUI's own
   SD1.5 discrete schedule (sigmas from the built model's model_sampling), 10% prompt dropout to
   the empty prompt for classifier-free guidance.
3. A quick calibration with ComfyUI's sampler (euler, 20 steps, cfg 5): a pixel-colour heuristic
   (connected components per palette colour, shape from fill ratio) estimates the single-sample
   pass rate and pass@16 on held-out prompts. Unofficial: the official numbers come from judge E.

Torch runs with one thread: on this shared 2-core machine two threads were measured 14x slower
(thread wake-up stalls under load), see lab/README.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

LAB = Path(__file__).resolve().parent
REPO = LAB.parent
sys.path.insert(0, str(REPO / "tests"))
from harness.paths import comfyui_path  # noqa: E402

sys.path.insert(0, str(comfyui_path()))
sys.path.insert(0, str(LAB))
import comfy.cli_args  # noqa: E402

comfy.cli_args.args.cpu = True
import numpy as np  # noqa: E402
import safetensors.torch  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from comfy_lab_pack import world_model as wm  # noqa: E402
from comfy_lab_pack._lab import world  # noqa: E402

torch.set_num_threads(1)

SHARPNESS, THRESHOLD = 4.0, 0.5  # decoder masks: clamp(SHARPNESS * (field - THRESHOLD) + 0.5, 0, 1)
TENT = torch.outer(torch.tensor([1.0, 2.0, 1.0]), torch.tensor([1.0, 2.0, 1.0])) / 16
BG = torch.tensor(world.BACKGROUND, dtype=torch.float32) / 255
PALETTE = torch.tensor(list(world.COLOURS.values()), dtype=torch.float32) / 255  # [4, 3]
N_COL = len(world.COLOURS)
LATENT_NOISE = 0.0  # VAE training: Gaussian noise on the latents, relative to their std
OBJECT_WEIGHT = 10.0  # VAE loss weight of pixels within 2 px of an object, on top of 1
FIELD_CHANNELS = 16  # live channels of the trained 32x32 decoder layers (the other 48 stay zero)


# ---------------------------------------------------------------- data

def render_set(n: int, seed: int) -> tuple[np.ndarray, list[str]]:
    """n renders of uniformly drawn prompts (all 528): uint8 [n, 64, 64, 3] and the prompts."""
    rng = np.random.default_rng(seed)
    prompts = world.all_prompts()
    chosen = [prompts[i] for i in rng.integers(0, len(prompts), n)]
    return np.stack([world.render(p, rng) for p in chosen]), chosen


def to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255


def colour_masks(images: torch.Tensor) -> torch.Tensor:
    """[B, 3, 64, 64] in [0, 1] -> [B, 4, 64, 64] indicator of each palette colour (exact renders)."""
    return torch.stack([(images - c.view(1, 3, 1, 1)).abs().amax(1) < 1e-3 for c in PALETTE], 1).float()


# ---------------------------------------------------------------- VAE

def _identity_block(block) -> None:
    """Block(x) = relu(x + branch(x)); a zero last conv makes it relu(x) = x on x >= 0."""
    with torch.no_grad():
        block.conv[4].weight.zero_()
        block.conv[4].bias.zero_()


def design_vae(encoder, decoder) -> None:
    """Write the designed (untrained) layers into the TAESD encoder and decoder, in place, and zero
    the channels of the 32x32 decoder layers that the training path leaves out (FIELD_CHANNELS)."""
    with torch.no_grad():
        e0, e2, e6 = encoder[0], encoder[2], encoder[6]
        e0.weight.zero_()
        e0.bias.zero_()
        for c in range(3):
            e0.weight[c, c, 1, 1] = 1.0
        for conv, n_in in ((e2, 3), (e6, 12)):  # stride-2 space-to-depth: out q*4 + a*2 + b
            conv.weight.zero_()
            for q in range(n_in):
                for a in range(2):
                    for b in range(2):
                        conv.weight[q * 4 + a * 2 + b, q, a + 1, b + 1] = 1.0
        for i in (1, 3, 4, 5, 7, 8, 9):
            _identity_block(encoder[i])
        for i in (5, 9, 10, 14, 15):
            _identity_block(decoder[i])
        decoder[12].weight[FIELD_CHANNELS:] = 0.0  # 32x32 layers: only FIELD_CHANNELS channels live
        for conv in decoder[13].conv[0::2]:
            conv.weight[FIELD_CHANNELS:] = 0.0
            conv.weight[:, FIELD_CHANNELS:] = 0.0
            conv.bias[FIELD_CHANNELS:] = 0.0
        blur = decoder[17]  # tent blur of the four fields after the last upsample
        blur.weight.zero_()
        for c in range(N_COL):
            blur.weight[c, c] = TENT
        b1, b2, b3 = decoder[18].conv[0], decoder[18].conv[2], decoder[18].conv[4]
        for conv in (b1, b2, b3):
            conv.weight.zero_()
            conv.bias.zero_()
        for c in range(N_COL):
            # conv1: u = k(g - t) + .5, v = u - 1, and a copy of g; conv2: relu(u) - relu(v) = mask,
            # and g again; conv3: mask - g, so the block's skip (+g) leaves the mask.
            b1.weight[4 + c, c, 1, 1] = SHARPNESS
            b1.bias[4 + c] = 0.5 - SHARPNESS * THRESHOLD
            b1.weight[8 + c, c, 1, 1] = SHARPNESS
            b1.bias[8 + c] = -0.5 - SHARPNESS * THRESHOLD
            b1.weight[12 + c, c, 1, 1] = 1.0
            b2.weight[c, 4 + c, 1, 1] = 1.0
            b2.weight[c, 8 + c, 1, 1] = -1.0
            b2.weight[12 + c, 12 + c, 1, 1] = 1.0
            b3.weight[c, c, 1, 1] = 1.0
            b3.weight[c, 12 + c, 1, 1] = -1.0
        out = decoder[19]
        out.weight.zero_()
        out.bias.copy_(BG)
        for c in range(N_COL):
            out.weight[:, c, 1, 1] = PALETTE[c] - BG


def encode_fast(encoder, x: torch.Tensor) -> torch.Tensor:
    """Encoder on pixels [B, 3, 64, 64] in [0, 1] -> raw latent [B, 4, 8, 8]; the designed layers
    run on their few non-zero channels only (equal to the full network, checked)."""
    s = F.conv2d(x, encoder[2].weight[:12, :3], stride=2, padding=1)
    s = F.conv2d(s, encoder[6].weight[:48, :12], stride=2, padding=1)
    s = F.pad(s, (0, 0, 0, 0, 0, 64 - 48))
    return encoder[14](encoder[13](encoder[12](encoder[11](encoder[10](s)))))


def decoder_fields(decoder, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Trained decoder layers: raw latent [B, 4, 8, 8] -> four colour fields [B, 4, 32, 32] >= 0,
    and the same before the last block's ReLU (a loss on these cannot die with the ReLU). The 32x32
    layers run on their FIELD_CHANNELS live channels only."""
    h = decoder[4](decoder[3](decoder[2](decoder[1](decoder[0](z)))))
    h = decoder[11](decoder[8](decoder[7](decoder[6](h))))
    k = FIELD_CHANNELS
    h = F.conv2d(h, decoder[12].weight[:k], padding=1)
    c1, c2, c3 = decoder[13].conv[0::2]
    b = F.relu(F.conv2d(h, c1.weight[:k, :k], c1.bias[:k], padding=1))
    b = F.relu(F.conv2d(b, c2.weight[:k, :k], c2.bias[:k], padding=1))
    b = F.conv2d(b, c3.weight[:k, :k], c3.bias[:k], padding=1)
    pre = (h + b)[:, :N_COL]
    return torch.relu(pre), pre


def paint(fields: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Designed decoder layers: fields [B, 4, 32, 32] -> (pixels [B, 3, 64, 64], blurred fields)."""
    w = TENT.expand(N_COL, 1, 3, 3)
    g = F.conv2d(F.interpolate(fields, scale_factor=2.0, mode="nearest"), w, padding=1, groups=N_COL)
    masks = torch.clamp(SHARPNESS * (g - THRESHOLD) + 0.5, 0, 1)
    return BG.view(1, 3, 1, 1) + torch.einsum("bchw,cd->bdhw", masks, PALETTE - BG), g


def train_vae(images: np.ndarray, steps: int, seed: int, log: dict) -> tuple:
    encoder, decoder = wm.build_vae_modules(seed)
    torch.manual_seed(seed)
    for m in [*encoder.modules(), *decoder.modules()]:  # ReLU-scaled init keeps the signal alive
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            if m.bias is not None:
                torch.nn.init.zeros_(m.bias)
    design_vae(encoder, decoder)
    learned = [encoder[i] for i in (10, 11, 12, 13, 14)] + [decoder[i] for i in (1, 3, 4, 7, 8, 12, 13)]
    params = [p for m in learned for p in m.parameters()]
    opt = torch.optim.Adam(params, lr=1e-3)
    gen = torch.Generator().manual_seed(seed)
    batch, losses, t0 = 16, [], time.time()
    for step in range(steps):
        for g in opt.param_groups:
            g["lr"] = 1e-3 * 0.5 * (1 + math.cos(math.pi * step / steps))
        idx = torch.randint(0, len(images), (batch,), generator=gen)
        x = to_tensor(images[idx.numpy()])
        raw = encode_fast(encoder, x)
        z = raw + LATENT_NOISE * raw.detach().std() * torch.randn(raw.shape, generator=gen)
        fields, pre = decoder_fields(decoder, z)
        rgb, g = paint(fields)
        masks = colour_masks(x)
        # Objects cover ~5% of the pixels: weight the pixels in and around them up, or the loss
        # is content with blobs. Direct targets for the 32x32 fields (each colour's coverage of
        # the 2x2-pixel cells) give dense gradients where the hard-sigmoid masks are saturated.
        near = 1.0 + OBJECT_WEIGHT * F.max_pool2d(masks.amax(1, keepdim=True), 5, 1, 2)
        near32 = F.avg_pool2d(near, 2)
        loss = ((near * (rgb - x) ** 2).mean() + (near * (g.clamp(max=1.0) - masks) ** 2).mean()
                + (near32 * (pre - F.avg_pool2d(masks, 2)) ** 2).mean())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            print(f"vae step {step} loss {np.mean(losses[-100:]):.5f} ({time.time() - t0:.0f} s)", flush=True)
    log["vae"] = {"steps": steps, "batch": batch, "wall_s": round(time.time() - t0, 1),
                  "loss_first_100": float(np.mean(losses[:100])), "loss_last_100": float(np.mean(losses[-100:])),
                  "trained_params_nonzero": int(sum((p != 0).sum() for p in params)),
                  "params": sum(p.numel() for m in (encoder, decoder) for p in m.parameters())}
    return encoder.eval(), decoder.eval()


def check_designed_vae(encoder, decoder, images: np.ndarray, log: dict) -> None:
    """The real TAESD networks equal the cheap training path (fails loudly otherwise)."""
    x = to_tensor(images[:4])
    with torch.no_grad():
        raw_full, raw_fast = encoder(x), encode_fast(encoder, x)
        img_full, img_fast = decoder(raw_full), paint(decoder_fields(decoder, raw_full)[0])[0]
    diffs = (float((raw_full - raw_fast).abs().max()), float((img_full - img_fast).abs().max()))
    log["vae"]["designed_layer_check_max_abs_diff"] = diffs
    if max(diffs) > 1e-4:
        raise AssertionError(f"designed TAESD layers differ from the training path: {diffs}")


# ---------------------------------------------------------------- UNet + text encoder

def train_unet(latents: torch.Tensor, prompts: list[str], steps: int, seed: int, log: dict,
               max_minutes: float):
    torch.manual_seed(seed)
    model = wm.build_unet_model(seed)
    text = wm.TextEncoder()
    wm.init_module(text, seed + 1)
    unet = model.diffusion_model
    sampling = model.model_sampling
    sigmas = sampling.sigmas.float()  # ComfyUI's SD1.5 discrete schedule, 1000 values
    params = list(unet.parameters()) + list(text.parameters())
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    tokens = torch.tensor([world.tokenize(p) for p in prompts])
    empty = torch.tensor(world.tokenize(""))
    gen = torch.Generator().manual_seed(seed)
    batch, losses, t0, warmup = 32, [], time.time(), 100
    unet.train()
    done = steps
    for step in range(steps):
        lr = 1e-3 * min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * step / steps))
        for g in opt.param_groups:
            g["lr"] = lr
        idx = torch.randint(0, len(latents), (batch,), generator=gen)
        x0 = latents[idx]
        tok = tokens[idx].clone()
        drop = torch.rand(batch, generator=gen) < 0.1
        tok[drop] = empty
        t = torch.randint(0, len(sigmas), (batch,), generator=gen)
        sigma = sigmas[t]
        eps = torch.randn(x0.shape, generator=gen)
        x_in = sampling.calculate_input(sigma, x0 + sigma.view(-1, 1, 1, 1) * eps)
        out = unet(x_in, sampling.timestep(sigma).float(), context=text(tok))
        loss = F.mse_loss(out, eps)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        losses.append(loss.item())
        if step % 100 == 0 or step == steps - 1:
            print(f"unet step {step} loss {np.mean(losses[-100:]):.4f} ({time.time() - t0:.0f} s)", flush=True)
        if time.time() - t0 > max_minutes * 60:
            done = step + 1
            print(f"stopping at step {done}: wall-time cap of {max_minutes} min reached", flush=True)
            break
    curve = [round(float(np.mean(losses[i:i + 100])), 4) for i in range(0, len(losses), 100)]
    log["unet"] = {"steps_planned": steps, "steps_done": done, "batch": batch, "wall_s": round(time.time() - t0, 1),
                   "loss_per_100_steps": curve, "loss_last_100": curve[-1],
                   "unet_params": sum(p.numel() for p in unet.parameters()),
                   "text_encoder_params": sum(p.numel() for p in text.parameters()),
                   "config": wm.UNET_CONFIG, "prompt_dropout": 0.1, "lr": "1e-3 warmup 100, cosine"}
    return unet.eval(), text.eval()


# ---------------------------------------------------------------- calibration (unofficial)

def heuristic_objects(image: np.ndarray) -> list[world.SceneObject]:
    """Objects in a uint8 [64, 64, 3] picture by a pixel-colour heuristic: pixels within 80 (RGB
    distance) of a palette colour, connected components of >= 20 pixels, shape from the fill
    ratio of the bounding box (> 0.88 square, > 0.64 circle, else triangle)."""
    from scipy import ndimage

    found = []
    px = image.astype(np.float32)
    for name, rgb in world.COLOURS.items():
        mask = np.linalg.norm(px - np.array(rgb, np.float32), axis=-1) < 80
        labels, n = ndimage.label(mask)
        for k in range(1, n + 1):
            ys, xs = np.nonzero(labels == k)
            if len(xs) < 20:
                continue
            fill = len(xs) / ((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))
            shape = "square" if fill > 0.88 else "circle" if fill > 0.64 else "triangle"
            found.append(world.SceneObject(name, shape, float(xs.mean()), float(ys.mean())))
    return found


def calibrate(folder: Path, n_prompts: int, seed: int, log: dict, sheet: Path | None) -> None:
    import comfy.sample

    model, vae, text = wm.load_model(folder), wm.load_vae(folder), wm.load_text_encoder(folder)
    enc = text.model
    prompts = world.benchmark_prompts()[:: max(1, len(world.benchmark_prompts()) // n_prompts)][:n_prompts]
    # Heuristic sanity on ground truth first: how often the checker accepts true renders.
    rng = np.random.default_rng(seed)
    truth = float(np.mean([world.satisfies(heuristic_objects(world.render(p, rng)), p) for p in prompts]))
    t0, single, any16, rows = time.time(), [], [], []
    with torch.no_grad():
        negative = [[enc.encode([""]), {}]]
        for i, p in enumerate(prompts):
            positive = [[enc.encode([p]), {}]]
            latent = torch.zeros(16, 4, 8, 8)
            noise = comfy.sample.prepare_noise(latent, seed + i)
            out = comfy.sample.sample(model, noise, 20, 5.0, "euler", "normal", positive, negative, latent,
                                      disable_pbar=True, seed=seed + i)
            imgs = (vae.decode(out).clamp(0, 1).numpy() * 255).round().astype(np.uint8)  # [16, 64, 64, 3]
            ok = [world.satisfies(heuristic_objects(im), p) for im in imgs]
            single.append(ok[0])
            any16.append(any(ok))
            if len(rows) < 8:
                rows.append(np.concatenate(list(imgs[:8]), 1))
    log["calibration_heuristic"] = {
        "sampler": "euler, normal, 20 steps, cfg 5", "prompts": len(prompts), "samples_per_prompt": 16,
        "heuristic_accepts_true_renders": truth,
        "single_sample_pass_rate": float(np.mean(single)), "pass_at_16": float(np.mean(any16)),
        "wall_s": round(time.time() - t0, 1)}
    print(json.dumps(log["calibration_heuristic"], indent=1), flush=True)
    if sheet is not None:
        from PIL import Image

        Image.fromarray(np.concatenate(rows, 0)).resize((8 * 128, len(rows) * 128), Image.NEAREST).save(sheet)


# ---------------------------------------------------------------- main

def save(folder: Path, encoder, decoder, unet, text, scale: float, shift: float) -> dict:
    folder.mkdir(parents=True, exist_ok=True)

    def half(sd):
        return {k: v.detach().to(torch.float16).contiguous() for k, v in sd.items()}

    vae_sd = {f"taesd_encoder.{k}": v for k, v in half(encoder.state_dict()).items()}
    vae_sd.update({f"taesd_decoder.{k}": v for k, v in half(decoder.state_dict()).items()})
    vae_sd["vae_scale"] = torch.tensor(scale, dtype=torch.float32)
    vae_sd["vae_shift"] = torch.tensor(shift, dtype=torch.float32)
    files = {wm.VAE_FILE: vae_sd, wm.UNET_FILE: half(unet.state_dict()), wm.TEXT_FILE: half(text.state_dict())}
    for name, sd in files.items():
        safetensors.torch.save_file(sd, str(folder / name), metadata={"source": "lab/train_world.py"})
    return {name: (folder / name).stat().st_size for name in files}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--smoke", action="store_true", help="a 2-minute run to check the losses fall")
    ap.add_argument("--out", type=Path, default=LAB / "weights")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vae-steps", type=int, default=3500)
    ap.add_argument("--unet-steps", type=int, default=14000)
    ap.add_argument("--max-unet-minutes", type=float, default=45.0)
    ap.add_argument("--calibration-prompts", type=int, default=32)
    args = ap.parse_args()
    if args.smoke:
        args.vae_steps, args.unet_steps, args.calibration_prompts = 150, 150, 4
    t_start = time.time()
    log: dict = {"command": "python lab/train_world.py" + (" --smoke" if args.smoke else ""), "seed": args.seed,
                 "torch_threads": torch.get_num_threads(), "torch": torch.__version__}
    images, _ = render_set(4000 if args.smoke else 20000, args.seed)
    print(f"rendered {len(images)} AE images ({time.time() - t_start:.0f} s)", flush=True)
    encoder, decoder = train_vae(images, args.vae_steps, args.seed + 10, log)
    check_designed_vae(encoder, decoder, images, log)

    diff_images, prompts = render_set(4000 if args.smoke else 30000, args.seed + 1)
    with torch.no_grad():
        raw = torch.cat([encode_fast(encoder, to_tensor(diff_images[i:i + 500]))
                         for i in range(0, len(diff_images), 500)])
    m, s = float(raw.mean()), float(raw.std())
    # ComfyUI: LATENT = raw / vae_scale + vae_shift, and SD15's process_in multiplies by 0.18215, so
    # these make the UNet see (raw - m) / s: zero mean, unit variance.
    scale, shift = 0.18215 * s, -m / (0.18215 * s)
    latents = (raw - m) / s
    log["latents"] = {"raw_mean": m, "raw_std": s, "vae_scale": scale, "vae_shift": shift,
                      "unet_input_std": float(latents.std()), "count": len(latents)}
    del diff_images
    unet, text = train_unet(latents, prompts, args.unet_steps, args.seed + 20, log, args.max_unet_minutes)
    log["file_bytes"] = save(args.out, encoder, decoder, unet, text, scale, shift)
    log["training_wall_s"] = round(time.time() - t_start, 1)
    log["generator_training_prompts"] = "all 528 (judges hold out world.benchmark_prompts())"
    (args.out / "training_log.json").write_text(json.dumps(log, indent=1))
    calibrate(args.out, args.calibration_prompts, 1000, log, args.out / "calibration_samples.png")
    (args.out / "training_log.json").write_text(json.dumps(log, indent=1))
    print(f"done in {time.time() - t_start:.0f} s; wrote {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
