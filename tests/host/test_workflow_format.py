"""UI-format <-> API-format conversion against the real host's node definitions."""

import pytest

from harness.workflow import api_to_ui, swap_nodes, ui_to_api

from .test_http_smoke import tiny_sampling_prompt

pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def object_info(server):
    return server.get("/object_info")


def test_round_trip_keeps_every_value_and_link(object_info):
    prompt = tiny_sampling_prompt(seed=123)
    ui = api_to_ui(prompt, object_info)
    seed_widgets = next(n for n in ui["nodes"] if n["type"] == "KSampler")["widgets_values"]
    assert seed_widgets[:2] == [123, "fixed"], "the seed widget is followed by its control widget"
    back = ui_to_api(ui, object_info)
    by_type = {n["class_type"]: n["inputs"] for n in back.values()}
    assert by_type["KSampler"]["seed"] == 123
    assert by_type["KSampler"]["sampler_name"] == "euler"
    assert len(back) == len(prompt)
    # Same graph up to node renaming: compare each node's inputs with links resolved to types.
    def resolved(p):
        return sorted(
            (n["class_type"], sorted(
                (k, p[v[0]]["class_type"] if isinstance(v, list) else v) for k, v in n["inputs"].items()
            ))
            for n in p.values()
        )
    assert resolved(back) == resolved(prompt)


def test_unknown_node_type_is_an_error(object_info):
    ui = api_to_ui(tiny_sampling_prompt(), object_info)
    ui["nodes"][0]["type"] = "NoSuchNode"
    with pytest.raises(KeyError, match="NoSuchNode"):
        ui_to_api(ui, object_info)


def test_swap_rewires_links_and_refuses_dangling_ones():
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "dec": {"class_type": "VAEDecode", "inputs": {"samples": ["s", 0], "vae": ["ckpt", 2]}},
    }
    swapped = swap_nodes(prompt, {"CheckpointLoaderSimple": lambda n: {2: {"class_type": "EACPSTest_TinyVAE", "inputs": {}}}})
    assert swapped["dec"]["inputs"]["vae"] == ["ckpt.2", 0]
    assert swapped["ckpt.2"]["class_type"] == "EACPSTest_TinyVAE"
    with pytest.raises(KeyError, match="swapped-out"):
        swap_nodes(prompt, {"CheckpointLoaderSimple": lambda n: {0: {"class_type": "EACPSTest_TinyModel", "inputs": {}}}})


def test_converted_workflow_runs_on_the_server(server, object_info):
    ui = api_to_ui(tiny_sampling_prompt(seed=5, prefix="roundtrip"), object_info)
    entry = server.wait(server.queue(ui_to_api(ui, object_info)))
    assert entry["status"]["status_str"] == "success", entry["status"]
