"""EACPS_SaveImageWithReport: the PNG as Save Image writes it, the eacps text chunk, the JSON beside it."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from host.graphs import best_of_n_node, one_node_prompt, search_node, two_stage_prompt
from host.test_verifiers_judges import API_KEY, api_inputs, judge_server  # noqa: F401 (fixture)

pytestmark = pytest.mark.host


def save_node(source: str, prefix: str) -> dict:
    return {"class_type": "EACPS_SaveImageWithReport",
            "inputs": {"images": [source, 0], "report": [source, 5], "filename_prefix": prefix}}


def saved_files(comfy, result, key: str):
    [entry] = result.outputs[key]["images"]
    folder = comfy.base_dir / "output" / entry["subfolder"]
    png = folder / entry["filename"]
    return png, png.with_suffix(".json")


def test_png_carries_prompt_and_winner_recipe_and_the_report_lies_beside_it(comfy, captured):
    p = one_node_prompt(search_node(seed=9, k_global=4, m=2, k_local=2))
    p["save"] = save_node("one", "eacps_tests/run")
    result = comfy.run(p)
    png, js = saved_files(comfy, result, "save")
    assert png.parent.name == "eacps_tests" and png.name.startswith("run_") and js.is_file()
    report = json.loads(captured["one_report"])
    assert json.loads(js.read_text()) == report
    with Image.open(png) as img:
        assert img.size == (64, 64)
        text = dict(img.text)
    assert json.loads(text["prompt"])["save"]["class_type"] == "EACPS_SaveImageWithReport"
    chunk = json.loads(text["eacps"])
    winner = next(c for c in report["candidates"] if c["id"] == report["winner"])
    assert chunk["seed"] == captured["one_seed"] == winner["seed"]
    assert chunk["recipe"] == winner["recipe"] and chunk["setup"] == report["setup"]
    assert chunk["budget"] == "4 + 2*2 = 8" and "candidates" not in chunk
    # a second search saved under the same prefix does not overwrite: ComfyUI's counter moves on
    p["one"]["inputs"]["seed"] = 10
    png2, _ = saved_files(comfy, comfy.run(p), "save")
    assert png2 != png and png.is_file()


def test_a_string_that_is_not_a_report_is_refused(comfy):
    p = one_node_prompt(search_node(k_global=2, m=1, k_local=1))
    p["text"] = {"class_type": "PrimitiveStringMultiline", "inputs": {"value": "hello"}}
    p["save"] = {"class_type": "EACPS_SaveImageWithReport",
                 "inputs": {"images": ["one", 0], "report": ["text", 0], "filename_prefix": "eacps_tests/bad"}}
    result = comfy.run(p, expect_success=False)
    assert "not JSON" in result.error() and "'report' output" in result.error()


def test_the_api_key_is_in_neither_the_png_nor_the_report(comfy, captured, judge_server):  # noqa: F811
    node = best_of_n_node(n=3, seed=1, weights="sharpness=1.0, realism=2.0")
    node["inputs"]["verifier_2"] = ["judge", 0]
    p = one_node_prompt(node, key="bon")
    p["judge"] = {"class_type": "EACPS_LoadAPIJudgeVerifier", "inputs": api_inputs(judge_server)}
    p["save"] = save_node("bon", "eacps_tests/judged")
    result = comfy.run(p)
    png, js = saved_files(comfy, result, "save")
    report = json.loads(captured["bon_report"])
    assert "realism" in report["candidates"][0]["scores"], "the judge scored the candidates"
    assert judge_server.requests, "the judge was asked"
    for blob in (png.read_bytes(), js.read_bytes(), captured["bon_report"].encode()):
        assert API_KEY.encode() not in blob


def test_a_batch_is_saved_with_the_pixels_and_numbering_of_stock_save_image(comfy, captured):
    import numpy as np

    p = one_node_prompt(best_of_n_node(seed=4, n=2))
    p["two"] = {"class_type": "RepeatImageBatch", "inputs": {"image": ["one", 0], "amount": 2}}
    p["save"] = {"class_type": "EACPS_SaveImageWithReport",
                 "inputs": {"images": ["two", 0], "report": ["one", 5], "filename_prefix": "eacps_batch/ours"}}
    p["stock"] = {"class_type": "SaveImage", "inputs": {"images": ["two", 0], "filename_prefix": "eacps_batch/stock"}}
    result = comfy.run(p)
    ours, stock = result.outputs["save"]["images"], result.outputs["stock"]["images"]
    assert len(ours) == len(stock) == 2
    for a, b in zip(ours, stock, strict=True):
        assert a["filename"].removeprefix("ours") == b["filename"].removeprefix("stock"), (a, b)  # _00001_.png ...
        folder = comfy.base_dir / "output" / "eacps_batch"
        with Image.open(folder / a["filename"]) as x, Image.open(folder / b["filename"]) as y:
            assert np.array_equal(np.asarray(x), np.asarray(y))


def test_an_error_after_sampling_keeps_the_candidates_and_one_before_it_is_raised_as_it_was(comfy, captured):
    from eacps.nodes.saving import keep_sampled
    from eacps.search.pool import SearchError

    comfy.run(two_stage_prompt(seed=12, k_global=3, m=1, k_local=1))
    pool = captured["pool"]
    with pytest.raises(SearchError) as err:
        with keep_sampled() as box:
            box.pool = pool
            raise RuntimeError("the verifier fell over")
    first, kept = str(err.value).split("\n")
    assert first == "the verifier fell over"
    prefix = f"The {len(pool)} candidates sampled before this error are kept: report "
    assert kept.startswith(prefix) and len(pool) == 3 + 1, kept
    report_path, grid_path = kept[len(prefix):].split(", grid ")
    saved = json.loads(open(report_path).read())
    assert saved["stopped"] == "RuntimeError: the verifier fell over" and saved["winner"] is None
    assert [c["seed"] for c in saved["candidates"]] == [c.seed for c in pool.candidates]
    with Image.open(grid_path) as grid:
        assert grid.size[0] >= 64

    before = RuntimeError("refused before sampling")
    with pytest.raises(RuntimeError) as err:
        with keep_sampled():
            raise before
    assert err.value is before
