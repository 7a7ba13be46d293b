"""Run a real-model workflow on the tiny test models: swap its model loaders, text encoders and
verifier loaders for tiny stand-ins (``swap_nodes``), shrink the latent to 64x64 and the steps to a
few, and give LoadImage a small input image. Used by the example-workflow tests and by
scripts/make_workflows.py (thumbnails).

What stays real: every EACPS node, the sampler/scheduler settings, FluxGuidance,
ModelSamplingAuraFlow, VAEEncode, ImageScale*, LoadImage and the save nodes.
"""

from __future__ import annotations

from pathlib import Path

from .workflow import swap_nodes

TINY_CLIP = "EACPS-Tiny-ViT"  # registered by tests/verifier_models.register_tiny_open_clip
INPUT_IMAGE = "eacps_example_input.png"  # the LoadImage value the example workflows carry
SIDE = 64
STEPS = 3


def _tiny_model(_node):
    return {"class_type": "EACPSTest_TinyModel", "inputs": {"weights_seed": 0}}


def _tiny_vae(_node):
    return {"class_type": "EACPSTest_TinyVAE", "inputs": {"weights_seed": 0}}


def _text(key: str):
    def rule(node):
        return {0: {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": node["inputs"][key]}}}
    return rule


def _latent(_node):
    return {0: {"class_type": "EmptyLatentImage", "inputs": {"width": SIDE, "height": SIDE, "batch_size": 1}}}


def _scale(node):
    return {0: {"class_type": "ImageScale", "inputs": {"image": node["inputs"]["image"], "upscale_method": "bilinear",
                                                         "width": SIDE, "height": SIDE, "crop": "disabled"}}}


def _same(**changes):
    def rule(node):
        return {0: {"class_type": node["class_type"], "inputs": {**node["inputs"], **changes}}}
    return rule


RULES = {
    "UNETLoader": lambda n: {0: _tiny_model(n)},
    "CheckpointLoaderSimple": lambda n: {0: _tiny_model(n), 2: _tiny_vae(n)},
    "VAELoader": lambda n: {0: _tiny_vae(n)},
    "DualCLIPLoader": lambda n: {},
    "CLIPLoader": lambda n: {},
    "CLIPTextEncode": _text("text"),
    "TextEncodeQwenImageEdit": _text("prompt"),
    "EmptySD3LatentImage": _latent,
    "EmptyLatentImage": _latent,
    "ImageScaleToTotalPixels": _scale,
    "EACPS_LoadClipScoreVerifier": _same(arch=TINY_CLIP, weights="tiny_clip.safetensors"),
    "EACPS_LoadAestheticVerifier": _same(clip_arch=TINY_CLIP, clip_weights="tiny_clip.safetensors",
                                         head_weights="tiny_aesthetic_head.pth"),
    "EACPS_LoadPreservationVerifier": _same(clip_arch=TINY_CLIP, clip_weights="tiny_clip.safetensors",
                                            dinov2_folder="tiny_dinov2"),
    "EACPS_LoadVLMJudgeVerifier": _same(model_folder="tiny_qwen2vl"),
}


# A small budget for tests: N = 3 + 1*2 = 5 for EACPS, N = 5 for Best-of-N.
SMALL_BUDGET = {"k_global": 3, "m": 1, "k_local": 2, "n": 5}


def tiny_prompt(prompt: dict, small_budget: bool = False) -> dict:
    """The API prompt with real models swapped for the tiny ones and STEPS sampling steps
    (and, with ``small_budget``, SMALL_BUDGET's search sizes in place of the workflow's)."""
    out = swap_nodes(prompt, RULES)
    for node in out.values():
        inputs = node["inputs"]
        if "steps" in inputs:
            inputs["steps"] = STEPS
        if small_budget and node["class_type"].startswith("EACPS_"):
            for key, value in SMALL_BUDGET.items():
                if key in inputs:
                    inputs[key] = value
    return out


def write_input_image(input_dir: Path) -> Path:
    """A small deterministic RGB picture as the workflows' LoadImage input."""
    import numpy as np
    from PIL import Image

    y, x = np.mgrid[0:SIDE, 0:SIDE]
    rgb = np.stack([x * 4, y * 4, (x + y) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    rgb[20:44, 20:44] = (220, 40, 40)
    path = input_dir / INPUT_IMAGE
    Image.fromarray(rgb).save(path)
    return path


# ---- The lab world (lab/comfy_lab_pack): the trained model, VAE and text encoder instead of the
# random tiny ones, so a workflow draws real pictures (thumbnails, demo).

LAB_PROMPT = "a red circle left of a blue square"
LAB_STEPS = 20


def _lab_model(_node):
    return {"class_type": "EACPSLab_LoadModel", "inputs": {}}


def _lab_vae(_node):
    return {"class_type": "EACPSLab_LoadVAE", "inputs": {}}


def lab_prompt(prompt: dict, text: str = LAB_PROMPT) -> dict:
    """The API prompt on the lab world: model/VAE loaders -> the lab's, text encoders -> the lab's
    (``text`` for the positive, "" for whatever feeds a ``negative`` input), a model-sampling patch
    meant for another family (ModelSamplingAuraFlow) -> the plain lab model, 64x64 latents,
    LAB_STEPS steps, every EACPS ``prompt`` input -> ``text``; verifiers as in ``tiny_prompt``."""
    negatives = {v[0] for node in prompt.values() for k, v in node["inputs"].items()
                 if k == "negative" and isinstance(v, list)}

    def text_rule(node_key_text):
        def rule(node):
            is_negative = node["inputs"].get("text", node["inputs"].get("prompt")) in node_key_text
            return {0: {"class_type": "EACPSLab_TextEncode", "inputs": {"text": "" if is_negative else text}}}
        return rule

    negative_texts = {prompt[k]["inputs"].get("text", prompt[k]["inputs"].get("prompt")) for k in negatives
                      if prompt[k]["class_type"] in ("CLIPTextEncode", "TextEncodeQwenImageEdit")}
    rules = dict(RULES)
    rules.update({
        "UNETLoader": lambda n: {0: _lab_model(n)},
        "CheckpointLoaderSimple": lambda n: {0: _lab_model(n), 2: _lab_vae(n)},
        "VAELoader": lambda n: {0: _lab_vae(n)},
        "ModelSamplingAuraFlow": lambda n: {0: _lab_model(n)},
        "CLIPTextEncode": text_rule(negative_texts),
        "TextEncodeQwenImageEdit": text_rule(negative_texts),
    })
    out = swap_nodes(prompt, rules)
    for node in out.values():
        inputs = node["inputs"]
        if "steps" in inputs:
            inputs["steps"] = LAB_STEPS
        if node["class_type"].startswith("EACPS_") and isinstance(inputs.get("prompt"), str):
            inputs["prompt"] = text
    return out


def write_lab_input_image(input_dir: Path, text: str = LAB_PROMPT) -> Path:
    """A render of ``text`` from the lab world as the workflows' LoadImage input (seeded)."""
    import numpy as np
    from PIL import Image

    path = input_dir / INPUT_IMAGE
    Image.fromarray(lab_world().render(text, np.random.default_rng(0))).save(path)
    return path


def lab_world():
    """lab/world.py, the same module object the lab pack uses (``eacps_lab_world``)."""
    import importlib.util
    import sys

    from .paths import REPO_ROOT

    name = "eacps_lab_world"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "lab" / "world.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
