"""example_workflows/: each workflow checked against the real host's /object_info, listed under
/workflow_templates, up to date with scripts/make_workflows.py, and run end to end on the tiny
models (real loaders, text encoders and verifier files swapped for tiny ones; 64x64, 3 steps, N = 5)."""

from __future__ import annotations

import importlib.util
import json

import pytest

from harness.paths import PACK_FOLDER_NAME, REPO_ROOT
from harness.tiny_swaps import tiny_prompt, write_input_image
from harness.workflow import _input_specs, _is_widget, ui_to_api

pytestmark = pytest.mark.server

FOLDER = REPO_ROOT / "example_workflows"
NAMES = ["best_of_n_vs_eacps", "flux_t2i_eacps", "qwen_image_edit_eacps", "sdxl_eacps_one_node"]
# Combo inputs whose options are the user's model/input files: absent on the test host, allowed.
FILE_COMBOS = {"unet_name", "clip_name", "clip_name1", "clip_name2", "vae_name", "ckpt_name", "image", "weights",
               "clip_weights", "head_weights", "dinov2_folder", "model_folder"}


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def load(name: str) -> dict:
    return json.loads((FOLDER / f"{name}.json").read_text())


def _options(spec) -> list | None:
    if isinstance(spec[0], list):
        return spec[0]
    if spec[0] == "COMBO":
        return spec[1].get("options")
    return None


def test_the_folder_holds_four_workflows_each_with_a_thumbnail():
    assert sorted(p.stem for p in FOLDER.glob("*.json")) == NAMES
    assert sorted(p.name for p in FOLDER.iterdir() if p.suffix != ".json") == [f"{n}.jpg" for n in NAMES]


def test_comfyui_lists_them_as_templates(server):
    assert sorted(server.get("/workflow_templates")[PACK_FOLDER_NAME]) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_the_thumbnail_url_the_frontend_requests_serves_a_jpeg(server, name):
    # Frontend 1.32.9 builds custom-node template thumbnails as /api/workflow_templates/<pack>/<name>.jpg.
    import urllib.request

    with urllib.request.urlopen(f"{server.url}/api/workflow_templates/{PACK_FOLDER_NAME}/{name}.jpg") as r:
        assert r.read(3) == b"\xff\xd8\xff", name


@pytest.mark.parametrize("name", NAMES)
def test_every_node_input_and_link_matches_the_host(name, object_info):
    ui = load(name)
    nodes = {n["id"]: n for n in ui["nodes"]}
    for node in ui["nodes"]:
        assert node["type"] in object_info, f"{name}: node type {node['type']} is not registered"
        info = object_info[node["type"]]
        specs = _input_specs(info)
        widgets = [(n, k, o) for n, k, o in specs if _is_widget(k, o)]
        controls = sum(1 for n, k, o in widgets if k == "INT" and (o.get("control_after_generate") or n == "seed"))
        assert len(node["widgets_values"]) == len(widgets) + controls, f"{name}: {node['type']} widget count"
        declared = {n: k for n, k, _ in specs}
        for slot in node["inputs"]:
            assert slot["name"] in declared, f"{name}: {node['type']} has no input {slot['name']}"
            assert slot["type"] == declared[slot["name"]]
        required = [n for n in info["input"].get("required", {}) if not _is_widget(declared[n], {})]
        linked = {s["name"] for s in node["inputs"] if s.get("link") is not None}
        assert set(required) <= linked, f"{name}: {node['type']} leaves {set(required) - linked} unconnected"
    for link_id, src, src_slot, dst, dst_slot, kind in ui["links"]:
        out_type = object_info[nodes[src]["type"]]["output"][src_slot]
        in_slot = nodes[dst]["inputs"][dst_slot]
        assert in_slot["link"] == link_id
        assert out_type == kind == in_slot["type"], (
            f"{name}: link {link_id} {nodes[src]['type']}[{src_slot}] {out_type} -> {nodes[dst]['type']}.{in_slot['name']} "
            f"{in_slot['type']}"
        )
    # every widget value is one the host accepts (model files excepted: they are the user's)
    prompt = ui_to_api(ui, object_info)
    for node in prompt.values():
        info = object_info[node["class_type"]]["input"]
        specs = {**info.get("required", {}), **info.get("optional", {})}
        for key, value in node["inputs"].items():
            options = _options(specs[key])
            if options is not None and key not in FILE_COMBOS:
                assert value in options, f"{name}: {node['class_type']}.{key} = {value!r} not in {options[:8]}"


def test_loader_types_are_the_real_ones(object_info):
    types = {n["type"]: n for name in NAMES for n in load(name)["nodes"]}
    for t in ("UNETLoader", "DualCLIPLoader", "CLIPLoader", "VAELoader", "FluxGuidance", "EmptySD3LatentImage",
              "TextEncodeQwenImageEdit", "ModelSamplingAuraFlow", "CheckpointLoaderSimple", "LoadImage",
              "EACPS_Search", "EACPS_BestOfN", "EACPS_SaveImageWithReport"):
        assert t in types and t in object_info, t
    assert "flux" in types["DualCLIPLoader"]["widgets_values"]
    assert "qwen_image" in types["CLIPLoader"]["widgets_values"]


def test_the_files_are_what_make_workflows_generates(object_info):
    spec = importlib.util.spec_from_file_location("make_workflows", REPO_ROOT / "scripts" / "make_workflows.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    generated = module.build(object_info)
    for name in NAMES:
        assert generated[name] == load(name), f"{name}.json is stale: run scripts/make_workflows.py"


def test_edit_workflow_carries_the_eacps_edit_preset(object_info):
    prompt = ui_to_api(load("qwen_image_edit_eacps"), object_info)
    search = next(n for n in prompt.values() if n["class_type"] == "EACPS_Search")["inputs"]
    assert search["weights"] == "consistency=1.0\nrealism=4.0\nidentity=1.5"
    assert prompt[search["reference"][0]]["class_type"] == "ImageScaleToTotalPixels"
    judge = next(n for n in prompt.values() if n["class_type"] == "EACPS_LoadVLMJudgeVerifier")["inputs"]
    assert judge["aspects"] == "consistency, realism"


@pytest.mark.parametrize("name", NAMES)
def test_workflow_runs_on_the_tiny_models(name, object_info, comfy, judge_files):
    write_input_image(comfy.base_dir / "input")
    prompt = tiny_prompt(ui_to_api(load(name), object_info), small_budget=True)
    result = comfy.run(prompt)
    saves = [k for k, n in prompt.items() if n["class_type"] == "EACPS_SaveImageWithReport"]
    assert saves
    for key in saves:
        [entry] = result.outputs[key]["images"]
        png = comfy.base_dir / "output" / entry["subfolder"] / entry["filename"]
        report = json.loads(png.with_suffix(".json").read_text())
        assert report["budget"]["N"] == 5 and len(report["candidates"]) == 5
    grids = [k for k, n in prompt.items() if n["class_type"] == "SaveImage"]
    assert grids and all(result.outputs[k]["images"] for k in grids)
