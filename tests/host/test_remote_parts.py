"""The workers' pure parts: address parsing, the graph sent to a worker, the version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.host


@pytest.fixture(autouse=True, scope="module")
def remote(comfy):
    """nodes/ imports ComfyUI's modules, which the in-process host puts on the path."""
    from eacps.nodes import remote

    return remote


def parse_urls(text):
    from eacps.nodes.remote import parse_urls

    return parse_urls(text)


def test_parse_urls_keeps_order_and_skips_comments():
    text = "http://127.0.0.1:8189/\n\n  # a comment\nhttps://gpu-box:8188  # second GPU\n"
    assert parse_urls(text) == ("http://127.0.0.1:8189", "https://gpu-box:8188")


@pytest.mark.parametrize("bad, words", [
    ("127.0.0.1:8188", "line 1"),
    ("ftp://host:21", "line 1"),
    ("http://a:8188\nhttp://a:8188", "listed twice"),
    ("http://host:99999", "bad port"),
])
def test_parse_urls_refuses_bad_lines(bad, words):
    from eacps.search.pool import SearchError

    with pytest.raises(SearchError, match=words):
        parse_urls(bad)


def test_feeding_graph_takes_exactly_the_ancestors_of_the_sampling_inputs(remote):
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "lora": {"class_type": "LoraLoader", "inputs": {"model": ["ckpt", 0], "clip": ["ckpt", 1]}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["lora", 1], "text": "a cat"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["lora", 1], "text": ""}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "verifier": {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}},
        "workers": {"class_type": "EACPS_Workers", "inputs": {"urls": "http://h:1"}},
        "search": {"class_type": "EACPS_Search", "inputs": {
            "model": ["lora", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "vae": ["ckpt", 2], "verifier_1": ["verifier", 0], "workers": ["workers", 0], "seed": 3}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["search", 0]}},
    }
    graph = remote.feeding_graph(prompt, "search")
    assert set(graph.nodes) == {"ckpt", "lora", "pos", "neg", "latent"}
    assert graph.links == {"model": ["lora", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                           "latent_image": ["latent", 0], "vae": ["ckpt", 2]}
    sent, node_id = graph.with_worker_node({"recipes": []})
    assert sent[node_id]["class_type"] == "EACPS_WorkerSample"
    assert sent[node_id]["inputs"]["model"] == ["lora", 0]
    assert sent[node_id]["inputs"]["pack_version"] == remote.PACK_VERSION
    assert "search" not in sent and "workers" not in sent and "verifier" not in sent


def test_feeding_graph_needs_the_prompt(remote):
    from eacps.search.pool import SearchError

    with pytest.raises(SearchError, match="PROMPT"):
        remote.feeding_graph(None, "1")


def test_pack_version_is_pyproject_version(remote):
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', text, re.M).group(1) == remote.PACK_VERSION
