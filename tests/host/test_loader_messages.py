"""What a user sees of the verifier loaders before queueing and when queueing with a file missing,
through a real ComfyUI HTTP server whose models/verifiers folder is empty: names in one pattern,
dropdowns that list only files that exist or that the download switch fetches, and one message
naming every missing file."""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request

import pytest

from harness.paths import REPO_ROOT

pytestmark = pytest.mark.server

DECLARED = json.loads((REPO_ROOT / "node_list.json").read_text())
FILE_INPUTS = {  # loader -> its inputs that name a file or folder in models/verifiers
    "EACPS_LoadClipScoreVerifier": ["weights"],
    "EACPS_LoadAestheticVerifier": ["clip_weights", "head_weights"],
    "EACPS_LoadPreservationVerifier": ["dinov2_folder", "clip_weights"],
    "EACPS_LoadVLMJudgeVerifier": ["model_folder"],
    "EACPS_LoadPickScoreVerifier": ["model_folder"],
}


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def test_node_names_follow_one_pattern(object_info):
    for node_id in DECLARED:
        name = object_info[node_id]["display_name"]
        if node_id.startswith("EACPS_Load"):
            assert re.fullmatch(r"Load .+ Verifier \(EACPS\)", name), f"{node_id}: {name!r}"
        else:
            assert name.startswith("EACPS "), f"{node_id}: {name!r}"


@pytest.mark.parametrize("loader", sorted(FILE_INPUTS))
def test_dropdowns_offer_only_files_that_exist_or_can_be_downloaded(server, object_info, loader):
    """Nothing phantom: every option is in models/verifiers, or is a public file the loader's
    'download' switch fetches (its tooltip names the repositories)."""
    folder = server.base_dir / "models" / "verifiers"
    present = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    download = object_info[loader]["input"]["optional"]["download"][1]["tooltip"]
    for name in FILE_INPUTS[loader]:
        spec = object_info[loader]["input"]["required"][name]
        options = spec[0] if isinstance(spec[0], list) else spec[1]["options"]
        for option in set(options) - set(present):
            repo = option.split("/")[0]
            assert repo.lower() in download.lower() or any(
                part and part.lower() in download.lower() for part in repo.replace("_", "-").split("-")[:1]
            ), f"{loader}.{name} offers {option!r}, which is neither in models/verifiers ({present}) nor downloadable"


def _node_errors(server, prompt: dict) -> dict:
    req = urllib.request.Request(server.url + "/prompt", data=json.dumps({"prompt": prompt}).encode(),
                                 headers={"Content-Type": "application/json"})
    try:
        urllib.request.urlopen(req, timeout=30).read()
    except urllib.error.HTTPError as e:
        return json.loads(e.read())["node_errors"]
    raise AssertionError("the prompt was accepted although its verifier files are missing")


def _shown(loader: str, inputs: dict) -> dict:
    return {"loader": {"class_type": loader, "inputs": inputs},
            "show": {"class_type": "PreviewAny", "inputs": {"source": ["loader", 0]}}}


def test_a_missing_file_is_reported_with_one_message_on_its_widget(server):
    errors = _node_errors(server, _shown("EACPS_LoadClipScoreVerifier",
                                         {"arch": "ViT-B-32", "weights": "open_clip_model.safetensors"}))["loader"]["errors"]
    # ComfyUI attaches a node's validate_inputs message to every input it reads (here also the
    # download switch the check needs): one message, shown on the file widget among them.
    assert "weights" in {e["extra_info"]["input_name"] for e in errors}
    assert len({e["details"].split(" - ", 1)[1] for e in errors}) == 1, errors
    assert "open_clip_model.safetensors" in errors[0]["details"] and "models" in errors[0]["details"]


def test_the_aesthetic_loader_names_both_missing_files(server):
    errors = _node_errors(server, _shown("EACPS_LoadAestheticVerifier", {
        "clip_arch": "ViT-L-14-quickgelu", "clip_weights": "open_clip_model.safetensors",
        "head_weights": "sac+logos+ava1-l14-linearMSE.pth"}))["loader"]["errors"]
    assert {"clip_weights", "head_weights"} <= {e["extra_info"]["input_name"] for e in errors}, errors
    for e in errors:
        assert "open_clip_model.safetensors" in e["details"] and "sac+logos+ava1-l14-linearMSE.pth" in e["details"]
