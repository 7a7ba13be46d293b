"""The weight-loading safety policy, for every loader: a pickle that would run code on load is
refused with a clear error and its code never runs; a model folder whose weights are only a pickled
pytorch_model.bin is refused by every loader that reads model folders."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
from verifier_models import TINY_CLIP, write_dinov2, write_tiny_pickscore, write_tiny_qwen2_vl

from eacps.verifiers.base import VerifierError
from eacps.verifiers.weights import load_state_dict, load_strict

pytestmark = pytest.mark.host


class RunsCode:
    """Pickles to a call of os.makedirs(marker): loading it without weights_only creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def write_code_running_pickle(path: Path, marker: Path, wrap: str | None = None) -> Path:
    sd = {"weight": torch.zeros(2), "payload": RunsCode(marker)}
    torch.save({wrap: sd} if wrap else sd, path)
    return path


def test_the_test_pickle_really_runs_code(tmp_path):
    """Guard for the tests below: loaded the unsafe way, the file does run its code."""
    marker = tmp_path / "ran"
    path = write_code_running_pickle(tmp_path / "x.pt", marker)
    torch.load(path, weights_only=False)  # noqa: S614 (the point of this check)
    assert marker.is_dir()


@pytest.mark.parametrize("name, wrap", [("evil.pt", None), ("evil.pth", "state_dict"), ("evil.bin", "model")])
def test_load_state_dict_refuses_code_running_pickles(tmp_path, name, wrap):
    marker = tmp_path / "ran"
    path = write_code_running_pickle(tmp_path / name, marker, wrap)
    with pytest.raises(VerifierError, match=rf"(?s)test weights: cannot read '{name}'.*weights_only=True"):
        load_state_dict(str(path), "test weights")
    assert not marker.exists(), "the pickle's code ran"


def test_load_state_dict_reads_plain_and_wrapped_state_dicts(tmp_path):
    sd = {"a.weight": torch.arange(3.0), "b": torch.ones(2, 2)}
    torch.save(sd, tmp_path / "plain.pt")
    torch.save({"state_dict": {f"module.{k}": v for k, v in sd.items()}}, tmp_path / "wrapped.pth")
    from safetensors.torch import save_file

    save_file(sd, str(tmp_path / "st.safetensors"))
    for name in ("plain.pt", "wrapped.pth", "st.safetensors"):
        got = load_state_dict(str(tmp_path / name), "w")
        assert set(got) == set(sd) and all(torch.equal(got[k], sd[k]) for k in sd), name
    torch.save({"a": torch.zeros(1), "n": 3}, tmp_path / "mixed.pt")
    with pytest.raises(VerifierError, match="not a state dict of tensors"):
        load_state_dict(str(tmp_path / "mixed.pt"), "w")


def _run_loader(comfy, class_type: str, inputs: dict):
    return comfy.run({
        "load": {"class_type": class_type, "inputs": inputs},
        "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "unsafe"}},
    }, expect_success=False)


SINGLE_FILE_LOADERS = [
    ("EACPS_LoadClipScoreVerifier", "evil_clip.pt", None,
     lambda f: {"arch": TINY_CLIP, "weights": f}),
    ("EACPS_LoadAestheticVerifier", "evil_backbone.pt", None,
     lambda f: {"clip_arch": TINY_CLIP, "clip_weights": f, "head_weights": "tiny_aesthetic_head.pth"}),
    ("EACPS_LoadAestheticVerifier", "evil_head.pth", None,
     lambda f: {"clip_arch": TINY_CLIP, "clip_weights": "tiny_clip.safetensors", "head_weights": f}),
    ("EACPS_LoadHPSv2Verifier", "evil_hps.pt", "state_dict",
     lambda f: {"arch": TINY_CLIP, "weights": f, "download": False}),
    ("EACPS_LoadPreservationVerifier", "evil_preservation.pt", None,
     lambda f: {"aspect": "identity", "backbone": "open_clip", "dinov2_folder": "tiny_dinov2",
                "clip_arch": TINY_CLIP, "clip_weights": f, "ssim_weight": 0.5}),
]


@pytest.mark.parametrize("class_type, name, wrap, inputs", SINGLE_FILE_LOADERS,
                         ids=[f"{c[0]}-{c[1]}" for c in SINGLE_FILE_LOADERS])
def test_every_file_loader_refuses_code_running_pickles(comfy, verifier_files, tmp_path, class_type, name, wrap,
                                                        inputs):
    marker = tmp_path / "ran"
    write_code_running_pickle(verifier_files / name, marker, wrap)
    result = _run_loader(comfy, class_type, inputs(name))
    assert not result.success
    assert f"cannot read '{name}'" in result.error() and "weights_only=True" in result.error(), result.error()
    assert not marker.exists(), "the pickle's code ran"


def test_imagereward_refuses_a_code_running_checkpoint(comfy, preference_files, tmp_path):
    marker = tmp_path / "ran"
    write_code_running_pickle(preference_files / "tiny_imagereward" / "evil.pt", marker)
    result = _run_loader(comfy, "EACPS_LoadImageRewardVerifier",
                         {"model_folder": "tiny_imagereward", "checkpoint": "evil.pt", "download": False})
    assert not result.success
    assert "cannot read 'evil.pt'" in result.error() and "weights_only=True" in result.error(), result.error()
    assert not marker.exists(), "the pickle's code ran"


def _pickle_only(folder: Path, marker: Path) -> Path:
    """Replace the folder's safetensors weights by a pytorch_model.bin that would run code."""
    for f in folder.glob("*.safetensors"):
        f.unlink()
    write_code_running_pickle(folder / "pytorch_model.bin", marker)
    return folder


FOLDER_LOADERS = [
    ("EACPS_LoadPickScoreVerifier", write_tiny_pickscore, lambda f: {"model_folder": f}),
    ("EACPS_LoadVLMJudgeVerifier", write_tiny_qwen2_vl,
     lambda f: {"model_folder": f, "aspects": "realism", "max_batch": 2}),
    ("EACPS_LoadPreservationVerifier", write_dinov2,
     lambda f: {"aspect": "identity", "backbone": "dinov2", "dinov2_folder": f, "clip_arch": TINY_CLIP,
                "clip_weights": "tiny_clip.safetensors", "ssim_weight": 0.5}),
]


@pytest.mark.parametrize("class_type, write, inputs", FOLDER_LOADERS, ids=[c[0] for c in FOLDER_LOADERS])
def test_every_folder_loader_refuses_pickle_only_folders(comfy, verifier_files, tmp_path, class_type, write, inputs):
    name = f"pickled_{class_type}"
    folder = verifier_files / name
    shutil.rmtree(folder, ignore_errors=True)
    marker = tmp_path / "ran"
    _pickle_only(write(folder), marker)
    result = _run_loader(comfy, class_type, inputs(name))
    assert not result.success
    assert name in result.error() and "safetensors" in result.error(), result.error()
    assert not marker.exists(), "the pickle's code ran"


def test_load_strict_refuses_a_state_dict_that_does_not_fit_naming_every_disagreement():
    module = torch.nn.Linear(3, 2)  # weight (2, 3), bias (2,)
    extra = {"weight": torch.zeros(2, 3), "bias": torch.zeros(2), "scale": torch.ones(1)}
    with pytest.raises(VerifierError) as e:
        load_strict(module, extra, "test verifier", "extra.pt")
    assert str(e.value) == ("test verifier: 'extra.pt' does not fit the chosen architecture: unexpected keys "
                            "scale. Pick the architecture these weights were trained with")
    wrong = {"weight": torch.zeros(3, 3), "other": torch.ones(1)}  # bias missing, weight of another shape
    with pytest.raises(VerifierError) as e:
        load_strict(module, wrong, "test verifier", "wrong.pt")
    assert str(e.value) == ("test verifier: 'wrong.pt' does not fit the chosen architecture: missing keys bias; "
                            "unexpected keys other; shape mismatches weight: file (3, 3) vs model (2, 3). "
                            "Pick the architecture these weights were trained with")
    fits = {"weight": torch.arange(6.0).reshape(2, 3), "bias": torch.tensor([7.0, 8.0])}
    load_strict(module, fits, "test verifier", "fits.pt")
    assert torch.equal(module.weight, fits["weight"]) and torch.equal(module.bias, fits["bias"])


def test_a_weights_file_that_cannot_be_read_is_named_with_what_is_accepted(tmp_path):
    path = tmp_path / "cut.safetensors"
    path.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": ")  # a header cut short
    with pytest.raises(VerifierError) as info:
        load_state_dict(str(path), "test weights")
    message = str(info.value)
    assert message.startswith("test weights: cannot read 'cut.safetensors' (")
    assert message.endswith("). Only safetensors files and plain PyTorch state dicts (loadable with "
                            "weights_only=True) are accepted")
