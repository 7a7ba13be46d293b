"""What the download switch fetches is enough to load each model folder: the loader node, run with
download on in a real ComfyUI prompt, fetches the catalogue's own entry (downloads.PICKSCORE,
IMAGEREWARD, VLM_JUDGES) from a loopback Hub serving tiny real-format models under the real
repository names, and the verifier it builds scores exactly as the same model loaded from a folder
written by transformers' save_pretrained. Never the internet.

A processor repository may hold its tokenizer in either layout transformers reads: the fast one
(tokenizer.json) or the slow one (CLIP: vocab.json + merges.txt; BERT/BLIP: vocab.txt). The
processor part of a download must bring whichever the repository has."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import torch
from verifier_checks import load_verifier, make_images
from verifier_models import tiny_bert_tokenizer, tiny_clip_tokenizer, write_tiny_qwen2_vl

from eacps.verifiers import downloads

from . import test_verifier_downloads_hub as hub_server

pytestmark = pytest.mark.host

DECOYS = {"pytorch_model.bin": b"pickle, never fetched", "README.md": b"# card"}


@pytest.fixture
def hub(comfy, preference_files, monkeypatch, tmp_path):
    """A loopback hub, huggingface_hub pointed at it (offline mode off for this test only); the
    folders the catalogue's entries land in are removed afterwards."""
    from huggingface_hub import constants

    # Each test's repositories get their own commits, as on the Hub when the files change:
    # huggingface_hub keeps a folder's tree listing per commit in memory for the whole process.
    monkeypatch.setattr(hub_server, "commit", lambda repo: hashlib.sha1(f"{repo}@{tmp_path}".encode()).hexdigest())
    server = hub_server.Hub({})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    yield server
    server.close()
    for known in (downloads.PICKSCORE, downloads.IMAGEREWARD, *downloads.VLM_JUDGES):
        shutil.rmtree(preference_files / known.name, ignore_errors=True)


def _files(folder: Path, names=None) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file() and (names is None or p.name in names)}


def _saved(tok, tmp_path: Path) -> dict[str, bytes]:
    """The fast layout: what the tokenizer's save_pretrained writes (tokenizer.json + config)."""
    folder = tmp_path / "fast_tokenizer"
    tok.save_pretrained(folder)
    return _files(folder)


def clip_tokenizer_files(layout: str, tmp_path: Path) -> dict[str, bytes]:
    tok = tiny_clip_tokenizer()
    saved = _saved(tok, tmp_path)
    if layout == "fast":
        return saved
    model = json.loads(tok.backend_tokenizer.to_str())["model"]  # CLIP's BPE: the vocab.json + merges.txt format
    merges = "".join(" ".join(m) + "\n" for m in model["merges"])
    return {"vocab.json": json.dumps(model["vocab"]).encode(), "merges.txt": f"#version: 0.2\n{merges}".encode(),
            "tokenizer_config.json": saved["tokenizer_config.json"]}


def bert_tokenizer_files(layout: str, tmp_path: Path) -> dict[str, bytes]:
    tok = tiny_bert_tokenizer()
    saved = _saved(tok, tmp_path)
    if layout == "fast":
        return saved
    vocab = sorted(tok.get_vocab().items(), key=lambda kv: kv[1])  # WordPiece: one token a line, in id order
    return {"vocab.txt": "".join(t + "\n" for t, _ in vocab).encode(),
            "tokenizer_config.json": saved["tokenizer_config.json"]}


def _same_scores(downloaded, local, prompt="a red apple"):
    images = make_images(3)
    got, want = downloaded.score(images, prompt), local.score(images, prompt)
    for aspect in local.aspects:
        assert torch.allclose(got.raw[aspect], want.raw[aspect], atol=1e-5, rtol=0), aspect


@pytest.mark.parametrize("layout", ["fast", "slow"])
def test_pickscore_download_brings_the_clip_h_tokenizer(comfy, captured, hub, preference_files, tmp_path, layout):
    local = preference_files / "tiny_pickscore"
    weights, processor = (p.repo for p in downloads.PICKSCORE.parts)
    hub.repos[weights] = {**_files(local, {"config.json", "model.safetensors"}), **DECOYS}  # PickScore_v1: no tokenizer
    hub.repos[processor] = {**clip_tokenizer_files(layout, tmp_path), **DECOYS,
                            "config.json": b'{"not": "the PickScore config"}',
                            "open_clip_model.safetensors": b"not fetched for a processor"}
    v = load_verifier(comfy, captured, "EACPS_LoadPickScoreVerifier", {"model_folder": "PickScore_v1", "download": True})
    folder = preference_files / "PickScore_v1"
    assert set(_files(folder)) == {"config.json", "model.safetensors", *clip_tokenizer_files(layout, tmp_path)}
    ref = load_verifier(comfy, captured, "EACPS_LoadPickScoreVerifier", {"model_folder": "tiny_pickscore"}, key="ref")
    _same_scores(v, ref)


@pytest.mark.parametrize("layout", ["fast", "slow"])
def test_imagereward_download_brings_the_blip_config_and_tokenizer(comfy, captured, hub, preference_files, tmp_path,
                                                                   layout):
    local = preference_files / "tiny_imagereward"
    checkpoint, blip = (p.repo for p in downloads.IMAGEREWARD.parts)
    hub.repos[checkpoint] = {"ImageReward.pt": (local / "ImageReward.pt").read_bytes(), "README.md": b"# card"}
    hub.repos[blip] = {**bert_tokenizer_files(layout, tmp_path), **DECOYS, "config.json": (local / "config.json").read_bytes(),
                       "model.safetensors": b"BLIP's own weights: not needed"}
    inputs = {"model_folder": "ImageReward", "checkpoint": "ImageReward.pt", "download": True}
    v = load_verifier(comfy, captured, "EACPS_LoadImageRewardVerifier", inputs)
    folder = preference_files / "ImageReward"
    assert set(_files(folder)) == {"ImageReward.pt", "config.json", *bert_tokenizer_files(layout, tmp_path)}
    ref = load_verifier(comfy, captured, "EACPS_LoadImageRewardVerifier",
                        {"model_folder": "tiny_imagereward", "checkpoint": "ImageReward.pt"}, key="ref")
    _same_scores(v, ref)


def test_vlm_judge_download_brings_every_file_save_pretrained_writes(comfy, captured, hub, judge_files, tmp_path):
    saved = _files(write_tiny_qwen2_vl(tmp_path / "qwen", seed=0))  # the weights of judge_files' tiny_qwen2vl
    assert "chat_template.jinja" in saved  # transformers writes the processor's chat template on its own
    known = downloads.VLM_JUDGES[0]
    hub.repos[known.parts[0].repo] = {**saved, **DECOYS}
    inputs = {"aspects": "realism", "max_batch": 4}
    v = load_verifier(comfy, captured, "EACPS_LoadVLMJudgeVerifier", {**inputs, "model_folder": known.name, "download": True})
    assert set(_files(judge_files / known.name)) == set(saved)
    ref = load_verifier(comfy, captured, "EACPS_LoadVLMJudgeVerifier", {**inputs, "model_folder": "tiny_qwen2vl"}, key="ref")
    _same_scores(v, ref)
