"""Generate example_workflows/*.json (UI format) from the readable descriptions below, checked against
a real ComfyUI host's /object_info (api_to_ui refuses unknown inputs and links widget values by the
host's input order), and render each workflow's thumbnail (same name, .jpg: the frontend asks for `<name>.jpg`): the candidate grid the
workflow itself produces when run on the lab world (lab/README.md: its loaders and text encoders
swapped for the lab's trained 64x64 model and the prompt for "a red circle left of a blue square",
20 steps; verifiers swapped for the tiny test ones).

    COMFYUI_PATH=$PWD/.comfyui/ComfyUI .venv/bin/python scripts/make_workflows.py [--no-thumbnails]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "example_workflows"
sys.path.insert(0, str(REPO / "tests"))

PROMPT = "a red fox in fresh snow at golden hour, detailed fur, 35mm photo"
EDIT_PROMPT = "make it a watercolour painting, keep the subject and composition"
INPUT_IMAGE = "eacps_example_input.png"  # keep equal to harness.tiny_swaps.INPUT_IMAGE
# Weights named as the loaders' download switch fetches them (verifiers/downloads.py): tick
# 'download' on a loader, or put the files at these paths under models/verifiers.
CLIP_L = "vit_large_patch14_clip_224.openai/open_clip_model.safetensors"
AESTHETIC_HEAD = "ddpo-aesthetic-predictor/aesthetic-model.pth"


def _clip_score(arch="ViT-L-14-quickgelu"):
    return {"class_type": "EACPS_LoadClipScoreVerifier",
            "inputs": {"arch": arch, "weights": CLIP_L, "download": False}}


def _aesthetic():
    return {"class_type": "EACPS_LoadAestheticVerifier",
            "inputs": {"clip_arch": "ViT-L-14-quickgelu", "clip_weights": CLIP_L, "head_weights": AESTHETIC_HEAD,
                       "download": False}}


def _save(image: list, report: list, prefix: str) -> dict:
    return {"class_type": "EACPS_SaveImageWithReport",
            "inputs": {"images": image, "report": report, "filename_prefix": prefix}}


def _save_grid(grid: list, prefix: str) -> dict:
    return {"class_type": "SaveImage", "inputs": {"images": grid, "filename_prefix": prefix}}


def _sdxl_base() -> dict:
    return {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "sd_xl_base_1.0.safetensors"}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["ckpt", 1]}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "blurry, lowres, watermark", "clip": ["ckpt", 1]}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "clip_score": _clip_score(),
        "aesthetic": _aesthetic(),
    }


def _sdxl_sampling(seed: int = 0) -> dict:
    return {"model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "vae": ["ckpt", 2], "seed": seed, "steps": 25, "cfg": 6.0, "sampler_name": "dpmpp_2m",
            "scheduler": "karras", "denoise": 1.0, "verifier_1": ["clip_score", 0], "verifier_2": ["aesthetic", 0],
            "weights": "clip_score=1.0\naesthetic=0.5", "prompt": PROMPT, "max_sub_batch": 4}


def _search_settings(**over) -> dict:
    s = {"k_global": 8, "m": 3, "k_local": 4, "mode": "slerp", "strength": 0.6, "generations": 1, "anneal": 0.5}
    s.update(over)
    return s


def flux_t2i_eacps() -> tuple[dict, dict]:
    def stage(prefix: str, source: list, m: int) -> dict:
        return {
            f"{prefix}_clip": {"class_type": "EACPS_VerifierScore",
                               "inputs": {"candidates": source, "verifier": ["clip_score", 0], "prompt": PROMPT}},
            f"{prefix}_aes": {"class_type": "EACPS_VerifierScore",
                              "inputs": {"candidates": [f"{prefix}_clip", 0], "verifier": ["aesthetic", 0],
                                         "prompt": PROMPT}},
            f"{prefix}_pot": {"class_type": "EACPS_WeightedPotential",
                              "inputs": {"candidates": [f"{prefix}_aes", 0], "weights": "clip_score=1.0\naesthetic=0.5"}},
            f"{prefix}_elite": {"class_type": "EACPS_EliteSelect", "inputs": {"candidates": [f"{prefix}_pot", 0], "m": m}},
        }

    p = {
        "unet": {"class_type": "UNETLoader", "inputs": {"unet_name": "flux1-dev.safetensors", "weight_dtype": "default"}},
        "clip": {"class_type": "DualCLIPLoader",
                 "inputs": {"clip_name1": "clip_l.safetensors", "clip_name2": "t5xxl_fp16.safetensors", "type": "flux",
                            "device": "default"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": "ae.safetensors"}},
        "pos_text": {"class_type": "CLIPTextEncode", "inputs": {"text": PROMPT, "clip": ["clip", 0]}},
        "pos": {"class_type": "FluxGuidance", "inputs": {"conditioning": ["pos_text", 0], "guidance": 3.5}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["clip", 0]}},
        "latent": {"class_type": "EmptySD3LatentImage", "inputs": {"width": 1024, "height": 1024, "batch_size": 1}},
        "clip_score": _clip_score(),
        "aesthetic": _aesthetic(),
        "global": {"class_type": "EACPS_SeedSearchGlobal",
                   "inputs": {"model": ["unet", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                              "latent_image": ["latent", 0], "vae": ["vae", 0], "seed": 0, "k_global": 8, "steps": 20,
                              "cfg": 1.0, "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0,
                              "max_sub_batch": 4}},
    }
    p.update(stage("s1", ["global", 0], 3))
    p["local"] = {"class_type": "EACPS_LocalSeedRefine",
                  "inputs": {"candidates": ["s1_elite", 0], "k_local": 4, "mode": "slerp", "strength": 0.6, "anneal": 0.5}}
    p.update(stage("s2", ["local", 0], 1))
    p["save"] = _save(["s2_elite", 1], ["s2_elite", 5], "EACPS/flux")
    p["grid"] = _save_grid(["s2_elite", 6], "EACPS/flux_grid")
    titles = {"global": "Stage 1: K_global = 8", "s1_elite": "Elites: M = 3", "local": "Stage 2: K_local = 4 per elite",
              "s2_elite": "Winner (best of 8 + 3*4 = 20)"}
    return p, titles


def qwen_image_edit_eacps() -> tuple[dict, dict]:
    p = {
        "unet": {"class_type": "UNETLoader",
                 "inputs": {"unet_name": "qwen_image_edit_fp8_e4m3fn.safetensors", "weight_dtype": "default"}},
        "shift": {"class_type": "ModelSamplingAuraFlow", "inputs": {"model": ["unet", 0], "shift": 3.1}},
        "clip": {"class_type": "CLIPLoader",
                 "inputs": {"clip_name": "qwen_2.5_vl_7b_fp8_scaled.safetensors", "type": "qwen_image", "device": "default"}},
        "vae": {"class_type": "VAELoader", "inputs": {"vae_name": "qwen_image_vae.safetensors"}},
        "image": {"class_type": "LoadImage", "inputs": {"image": INPUT_IMAGE}},
        "scaled": {"class_type": "ImageScaleToTotalPixels",
                   "inputs": {"image": ["image", 0], "upscale_method": "lanczos", "megapixels": 1.0}},
        "pos": {"class_type": "TextEncodeQwenImageEdit",
                "inputs": {"clip": ["clip", 0], "prompt": EDIT_PROMPT, "vae": ["vae", 0], "image": ["scaled", 0]}},
        "neg": {"class_type": "TextEncodeQwenImageEdit",
                "inputs": {"clip": ["clip", 0], "prompt": "", "vae": ["vae", 0], "image": ["scaled", 0]}},
        "latent": {"class_type": "VAEEncode", "inputs": {"pixels": ["scaled", 0], "vae": ["vae", 0]}},
        "judge": {"class_type": "EACPS_LoadVLMJudgeVerifier",
                  "inputs": {"model_folder": "Qwen2.5-VL-3B-Instruct", "aspects": "consistency, realism", "max_batch": 4,
                             "download": False}},
        "identity": {"class_type": "EACPS_LoadPreservationVerifier",
                     "inputs": {"aspect": "identity", "backbone": "dinov2", "dinov2_folder": "dinov2-base",
                                "clip_arch": "ViT-L-14-quickgelu", "clip_weights": CLIP_L, "ssim_weight": 0.5,
                                "download": False}},
        "search": {"class_type": "EACPS_Search",
                   "inputs": {"model": ["shift", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                              "latent_image": ["latent", 0], "vae": ["vae", 0], "seed": 0, "steps": 20, "cfg": 2.5,
                              "sampler_name": "euler", "scheduler": "simple", "denoise": 1.0,
                              "verifier_1": ["judge", 0], "verifier_2": ["identity", 0], **_search_settings(),
                              "weights": "consistency=1.0\nrealism=4.0\nidentity=1.5", "prompt": EDIT_PROMPT,
                              "max_sub_batch": 2, "reference": ["scaled", 0]}},
        "save": _save(["search", 0], ["search", 5], "EACPS/qwen_edit"),
        "grid": _save_grid(["search", 4], "EACPS/qwen_edit_grid"),
    }
    titles = {"search": "EACPS edit preset: consistency 1.0, realism 4.0, identity 1.5",
              "image": "Image to edit (also the reference)"}
    return p, titles


def sdxl_eacps_one_node() -> tuple[dict, dict]:
    p = _sdxl_base()
    p["search"] = {"class_type": "EACPS_Search", "inputs": {**_sdxl_sampling(), **_search_settings()}}
    p["save"] = _save(["search", 0], ["search", 5], "EACPS/sdxl")
    p["grid"] = _save_grid(["search", 4], "EACPS/sdxl_grid")
    return p, {"search": "EACPS Search: 8 + 3*4 = 20 candidates"}


def best_of_n_vs_eacps() -> tuple[dict, dict]:
    p = _sdxl_base()
    p["bon"] = {"class_type": "EACPS_BestOfN", "inputs": {**_sdxl_sampling(), "n": 20, "prune_steps": ""}}
    p["eacps"] = {"class_type": "EACPS_Search", "inputs": {**_sdxl_sampling(), **_search_settings()}}
    p["save_bon"] = _save(["bon", 0], ["bon", 5], "EACPS/best_of_20")
    p["save_eacps"] = _save(["eacps", 0], ["eacps", 5], "EACPS/eacps_20")
    p["grid_bon"] = _save_grid(["bon", 4], "EACPS/best_of_20_grid")
    p["grid_eacps"] = _save_grid(["eacps", 4], "EACPS/eacps_20_grid")
    return p, {"bon": "Best of N = 20 (plain baseline)", "eacps": "EACPS 8 + 3*4 = 20 (same budget)"}


WORKFLOWS = {
    "flux_t2i_eacps": flux_t2i_eacps,
    "qwen_image_edit_eacps": qwen_image_edit_eacps,
    "sdxl_eacps_one_node": sdxl_eacps_one_node,
    "best_of_n_vs_eacps": best_of_n_vs_eacps,
}


def build(object_info: dict) -> dict[str, dict]:
    from harness.workflow import api_to_ui

    out = {}
    for name, make in WORKFLOWS.items():
        prompt, titles = make()
        out[name] = api_to_ui(prompt, object_info, titles)
    return out


def write_json(workflows: dict[str, dict]) -> None:
    OUT.mkdir(exist_ok=True)
    for name, ui in workflows.items():
        (OUT / f"{name}.json").write_text(json.dumps(ui, indent=1) + "\n")


def thumbnails(workflows: dict[str, dict], object_info: dict) -> None:
    """Run each workflow on the lab world in-process; its saved grid(s) become the thumbnail."""
    from PIL import Image
    from verifier_models import (
        register_tiny_open_clip,
        write_aesthetic_head,
        write_dinov2,
        write_open_clip,
        write_tiny_qwen2_vl,
    )

    from harness.inprocess import InProcessComfy
    from harness.paths import make_base_dir
    from harness.tiny_swaps import lab_prompt, write_lab_input_image
    from harness.workflow import ui_to_api

    with tempfile.TemporaryDirectory(prefix="eacps_thumbs_") as tmp:
        base = make_base_dir(Path(tmp))
        folder = base / "models" / "verifiers"
        folder.mkdir(parents=True, exist_ok=True)
        register_tiny_open_clip(Path(tmp) / "open_clip_configs")
        write_open_clip(folder / "tiny_clip.safetensors")
        write_aesthetic_head(folder / "tiny_aesthetic_head.pth", input_size=32)
        write_dinov2(folder / "tiny_dinov2")
        write_tiny_qwen2_vl(folder / "tiny_qwen2vl")
        write_lab_input_image(base / "input")
        comfy = InProcessComfy(base)
        for name, ui in workflows.items():
            result = comfy.run(lab_prompt(ui_to_api(ui, object_info)))
            grids = [Image.open(base / "output" / e["subfolder"] / e["filename"]).convert("RGB")
                     for key, out in sorted(result.outputs.items()) for e in out.get("images", [])
                     if "grid" in e["filename"]]
            width = sum(g.width for g in grids) + 8 * (len(grids) - 1)
            sheet = Image.new("RGB", (width, max(g.height for g in grids)), (24, 24, 24))
            x = 0
            for g in grids:
                sheet.paste(g, (x, 0))
                x += g.width + 8
            sheet.thumbnail((512, 512))
            sheet.save(OUT / f"{name}.jpg", quality=90, optimize=True)
            print(f"  {name}.jpg from {len(grids)} grid(s)")
        shutil.rmtree(base / "output", ignore_errors=True)


def main() -> int:
    from harness.paths import make_base_dir
    from harness.server import ComfyServer

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--no-thumbnails", action="store_true", help="write the JSON only")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="eacps_wf_") as tmp:
        base = make_base_dir(Path(tmp))
        server = ComfyServer(base, base / "server.log")
        try:
            object_info = server.get("/object_info")
        finally:
            server.stop()
    workflows = build(object_info)
    write_json(workflows)
    print(f"wrote {len(workflows)} workflows to {OUT.relative_to(REPO)}/")
    if not args.no_thumbnails:
        thumbnails(workflows, object_info)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
