"""A plain sampling graph through the real HTTP server: the host and test models work."""

import pytest
from PIL import Image

pytestmark = pytest.mark.server


def tiny_sampling_prompt(seed: int = 1, steps: int = 4, prefix: str = "smoke") -> dict:
    return {
        "model": {"class_type": "EACPSTest_TinyModel", "inputs": {"weights_seed": 0}},
        "pos": {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": "a red apple"}},
        "neg": {"class_type": "EACPSTest_TinyConditioning", "inputs": {"text": ""}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "sampler": {
            "class_type": "KSampler",
            "inputs": {
                "model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                "latent_image": ["latent", 0], "seed": seed, "steps": steps, "cfg": 5.0,
                "sampler_name": "euler", "scheduler": "normal", "denoise": 1.0,
            },
        },
        "vae": {"class_type": "EACPSTest_TinyVAE", "inputs": {"weights_seed": 0}},
        "decode": {"class_type": "VAEDecode", "inputs": {"samples": ["sampler", 0], "vae": ["vae", 0]}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["decode", 0], "filename_prefix": prefix}},
    }


def test_prompt_over_http_writes_png(server):
    prompt_id = server.queue(tiny_sampling_prompt())
    entry = server.wait(prompt_id)
    assert entry["status"]["status_str"] == "success", entry["status"]
    images = entry["outputs"]["save"]["images"]
    assert len(images) == 1
    path = server.base_dir / "output" / images[0]["subfolder"] / images[0]["filename"]
    with Image.open(path) as img:
        assert img.size == (64, 64)
        assert img.format == "PNG"
