"""The lab world's trained model, VAE and text encoder run through stock ComfyUI nodes and EACPS."""

import json

import numpy as np
import pytest
from PIL import Image

from eacps.lab import world
from host.graphs import capture, ksampler_node, lab_base_nodes, one_node_prompt, search_node

pytestmark = pytest.mark.host
PROMPT = "a red circle left of a blue square"


def _near(px: np.ndarray, rgb, tol: float) -> np.ndarray:
    return np.linalg.norm(px - np.array(rgb, np.float32), axis=-1) < tol


def test_lab_pack_nodes_are_registered(comfy):
    assert {"EACPSLab_LoadModel", "EACPSLab_LoadVAE", "EACPSLab_TextEncode"} <= set(comfy.nodes.NODE_CLASS_MAPPINGS)


def test_stock_ksampler_draws_a_picture_of_the_world(comfy, captured):
    p = lab_base_nodes(PROMPT)
    p["ks"] = ksampler_node(seed=3, steps=20, cfg=5.0)
    p["dec"] = {"class_type": "VAEDecode", "inputs": {"samples": ["ks", 0], "vae": ["vae", 0]}}
    p["cap"] = capture(["dec", 0], "lab_image")
    p["cap_cond"] = capture(["pos", 0], "lab_cond")
    comfy.run(p)
    cond = captured["lab_cond"]
    assert tuple(cond[0][0].shape) == (1, world.MAX_TOKENS, 64)
    image = captured["lab_image"]
    assert tuple(image.shape) == (1, 64, 64, 3)
    px = image[0].numpy() * 255
    # A picture of the world, not noise: mostly the dark-grey background, plus at least one
    # object-sized patch of a palette colour.
    assert _near(px, world.BACKGROUND, 30).mean() > 0.6
    assert max(_near(px, rgb, 60).sum() for rgb in world.COLOURS.values()) >= 40


def test_stock_vae_nodes_round_trip_a_render(comfy, captured):
    render = world.render("a yellow triangle above a green square", np.random.default_rng(5))
    Image.fromarray(render).save(comfy.base_dir / "input" / "lab_render.png")
    p = {
        "load": {"class_type": "LoadImage", "inputs": {"image": "lab_render.png"}},
        "vae": {"class_type": "EACPSLab_LoadVAE", "inputs": {}},
        "enc": {"class_type": "VAEEncode", "inputs": {"pixels": ["load", 0], "vae": ["vae", 0]}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["enc", 0], "vae": ["vae", 0]}},
        "cap": capture(["dec", 0], "lab_round_trip"),
        "cap_latent": capture(["enc", 0], "lab_latent"),
    }
    comfy.run(p)
    assert tuple(captured["lab_latent"]["samples"].shape) == (1, 4, 8, 8)
    back = captured["lab_round_trip"][0].numpy() * 255
    # Each object's colour stays where the render put it (most of its pixels), background stays.
    for colour in ("yellow", "green"):
        truth = np.all(render == world.COLOURS[colour], axis=-1)
        assert _near(back[truth], world.COLOURS[colour], 80).mean() > 0.8
    assert _near(back[np.all(render == world.BACKGROUND, axis=-1)], world.BACKGROUND, 40).mean() > 0.97


def test_eacps_search_runs_on_the_lab_world(comfy, captured):
    p = one_node_prompt(search_node(seed=2, k_global=4, m=2, k_local=2, steps=8, prompt_text=PROMPT))
    p.update(lab_base_nodes(PROMPT))
    comfy.run(p)
    report = json.loads(captured["one_report"])
    assert len(report["candidates"]) == 4 + 2 * 2
    assert tuple(captured["one_image"].shape) == (1, 64, 64, 3)
    assert captured["one_grid"].shape[-1] == 3
