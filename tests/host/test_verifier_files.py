"""Which weight files and model folders the loaders offer: what models/verifiers holds (and a
verifiers folder the user added through ComfyUI's extra_model_paths.yaml), never the files inside
an HF model folder."""

from __future__ import annotations

import os

import pytest

pytestmark = pytest.mark.host


def test_loaders_offer_the_weight_files_on_disk_but_not_the_insides_of_model_folders(comfy, verifier_files,
                                                                                    preference_files):
    from eacps.verifiers import management

    files = management.weight_files()
    assert {"tiny_clip.safetensors", "tiny_aesthetic_head.pth", "tiny_hps.pt"} <= set(files), files
    assert not [f for f in files if f.split("/")[0] in ("tiny_pickscore", "tiny_imagereward", "tiny_dinov2")], files
    assert {"tiny_pickscore", "tiny_imagereward", "tiny_dinov2"} <= set(management.hf_folders())
    # what the editor shows: the CLIP score loader's weights list (ComfyUI's /object_info form)
    info = comfy.nodes.NODE_CLASS_MAPPINGS["EACPS_LoadClipScoreVerifier"].GET_NODE_INFO_V1()
    options = info["input"]["required"]["weights"][1]["options"]
    assert "tiny_clip.safetensors" in options and "tiny_pickscore/model.safetensors" not in options


def test_a_verifiers_folder_from_extra_model_paths_is_kept_and_its_files_are_offered(comfy, verifier_files,
                                                                                     tmp_path):
    """ComfyUI reads extra_model_paths.yaml before it imports custom nodes: a 'verifiers' entry there
    exists (with no file extensions) when the pack registers its folder."""
    import folder_paths

    from eacps.verifiers import management

    saved = folder_paths.folder_names_and_paths.pop("verifiers")
    extra = tmp_path / "more_verifiers"
    extra.mkdir()
    (extra / "extra_clip.safetensors").write_bytes(b"listed, never loaded")
    (extra / "notes.txt").write_text("not a weight file")
    try:
        folder_paths.add_model_folder_path("verifiers", str(extra))  # what the yaml entry does
        folder_paths.filename_list_cache.pop("verifiers", None)
        management.register_folders()
        paths = folder_paths.get_folder_paths("verifiers")
        assert paths == [os.path.join(folder_paths.models_dir, "verifiers"), str(extra)]
        files = management.weight_files()
        assert "extra_clip.safetensors" in files and "tiny_clip.safetensors" in files, files
        assert "notes.txt" not in files
    finally:
        folder_paths.folder_names_and_paths["verifiers"] = saved
        folder_paths.filename_list_cache.pop("verifiers", None)


@pytest.mark.parametrize("folder, name, said", [
    (False, "nope.safetensors", "file 'nope.safetensors' not found. Put it in {dir} (ComfyUI's models/verifiers/ "
                                "folder). Where to get it: SOURCE"),
    (False, " ", "no weights file chosen. CLIP thing: file '<none>' not found. Put it in {dir} (ComfyUI's "
                 "models/verifiers/ folder). Where to get it: SOURCE"),
    (True, "nope", "folder 'nope' not found. Put it in {dir} (ComfyUI's models/verifiers/ folder, as a sub-folder). "
                   "Where to get it: SOURCE"),
    (True, "", "folder '<none>' not found. Put it in {dir} (ComfyUI's models/verifiers/ folder, as a sub-folder). "
               "Where to get it: SOURCE"),
])
def test_a_missing_file_or_folder_says_which_where_it_goes_and_where_to_get_it(comfy, verifier_files, folder,
                                                                               name, said):
    from eacps.verifiers import management
    from eacps.verifiers.base import VerifierError

    resolve = management.resolve_folder if folder else management.resolve_file
    with pytest.raises(VerifierError) as info:
        resolve(name, "CLIP thing", "SOURCE")
    assert str(info.value) == "CLIP thing: " + said.format(dir=os.path.join(str(verifier_files), ""))


@pytest.mark.parametrize("module, names", [
    ("bert", ("vocab_file", "tokenizer_file")),  # WordPiece: vocab.txt; fast: tokenizer.json
    ("clip", ("vocab_file",)),  # BPE: vocab.json (+ merges.txt)
    ("llama", ("vocab_file",)),  # sentencepiece: tokenizer.model
    ("t5", ("vocab_file",)),  # sentencepiece: spiece.model
])
def test_a_folder_with_any_kind_of_tokenizer_file_passes_the_tokenizer_check(comfy, tmp_path, module, names):
    """The file names come from transformers' own tokenizer classes (VOCAB_FILES_NAMES)."""
    import importlib

    from eacps.verifiers import management
    from eacps.verifiers.base import VerifierError

    files = importlib.import_module(f"transformers.models.{module}.tokenization_{module}").VOCAB_FILES_NAMES
    for name in names:
        folder = tmp_path / f"{module}_{name}"
        folder.mkdir()
        (folder / files[name]).write_text("x")
        management.require_tokenizer_files(str(folder), "a verifier", "SOURCE")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VerifierError, match="^a verifier: no tokenizer files in "):
        management.require_tokenizer_files(str(empty), "a verifier", "SOURCE")


def test_verifier_models_load_on_the_device_comfy_computes_on(comfy):
    """Each verifier's ModelPatcher loads to ComfyUI's torch device and offloads to its offload device,
    so ComfyUI's model management moves it as it moves the diffusion model."""
    import importlib

    import torch

    from eacps.verifiers import management

    mm = importlib.import_module("comfy.model_management")
    managed = management.manage(torch.nn.Linear(2, 2))
    assert managed.device == mm.get_torch_device() == managed.patcher.load_device
    assert managed.patcher.offload_device == mm.text_encoder_offload_device()
