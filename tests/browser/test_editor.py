"""The pack as users see it: the real ComfyUI frontend in headless Chromium.

Every shipped workflow is loaded once (one page, one loop) and checked for what a user would see:
every node type known, every declared input and widget present, widget values equal to the file, no
two nodes overlapping, text drawn at the zoom it opens with, and the prompt the browser would submit
equal to the one tests build from the file (tests/harness/workflow.ui_to_api). The templates browser
shows our cards with their thumbnails. A search queued from the page on the tiny models moves the
progress bar through sampling and scoring, ends with the candidate grid on the node and the result on
the save node, and Cancel stops a long one.
"""

from __future__ import annotations

import json
import os
import shutil
import time

import pytest
from host.graphs import base_nodes, sampler_settings
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from harness.paths import PACK_FOLDER_NAME, REPO_ROOT
from harness.workflow import _input_specs, api_to_ui, ui_to_api

pytestmark = [pytest.mark.server, pytest.mark.browser]

FOLDER = REPO_ROOT / "example_workflows"
NAMES = sorted(p.stem for p in FOLDER.glob("*.json"))

NODE_INFO_JS = """() => window.app.graph._nodes.map(n => ({
    id: n.id, type: n.type, title: n.title, registered: !!LiteGraph.registered_node_types[n.type],
    inputs: (n.inputs || []).map(i => i.name), outputs: (n.outputs || []).map(o => o.name),
    widgets: (n.widgets || []).map(w => ({name: w.name, value: w.value})),
    bounding: [...n.getBounding()], size: [...n.size], min: [...n.computeSize()],
    description: LiteGraph.registered_node_types[n.type]?.nodeData?.description ?? null,
}))"""


@pytest.fixture(scope="module")
def object_info(editor):
    return editor.server.get("/object_info")


@pytest.fixture(scope="module")
def templates(editor):
    """The templates browser the frontend opens for a first-time user, with our pack's cards."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = editor.page
    shown_js = """(names) => names.filter(n => [...document.querySelectorAll('img')].some(
        img => img.alt === n && img.complete && img.naturalWidth > 0))"""
    try:
        page.wait_for_function(f"(names) => ({shown_js})(names).length === names.length", arg=NAMES, timeout=20_000)
    except PlaywrightTimeout:
        pass  # the test below reports which cards lack their picture
    cards = {"shown": page.evaluate(shown_js, NAMES),
             "requested": [r for r in editor.responses if "/workflow_templates/" in r[0]]}
    editor.screenshot("templates")
    page.locator(".p-dialog button:has(i.pi-times)").first.click()
    page.wait_for_function("() => !document.querySelector('.p-dialog')", timeout=10_000)
    return cards


@pytest.fixture(scope="module")
def loaded(editor, templates):
    """Each shipped workflow loaded in turn: what the editor shows and would submit."""
    page, out = editor.page, {}
    for name in NAMES:
        ui = json.loads((FOLDER / f"{name}.json").read_text())
        page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", ui)
        page.evaluate("() => window.app.canvas.draw(true, true)")
        out[name] = {
            "file": ui,
            "nodes": page.evaluate(NODE_INFO_JS),
            "prompt": page.evaluate("async () => (await window.app.graphToPrompt()).output"),
            "dialogs": page.locator(".p-dialog").all_inner_texts(),
            "view": page.evaluate("() => ({scale: app.canvas.ds.scale, low_quality: app.canvas.low_quality})"),
            "screenshot": editor.screenshot(f"workflow_{name}"),
        }
    return out


def test_template_cards_show_their_thumbnails(templates):
    assert sorted(templates["shown"]) == NAMES, f"cards without their thumbnail; requests: {templates['requested']}"


@pytest.mark.parametrize("name", NAMES)
def test_every_node_is_known_and_shows_every_declared_input_and_widget(loaded, object_info, name):
    assert not loaded[name]["dialogs"], f"{name}: loading opened a dialog (missing nodes?): {loaded[name]['dialogs']}"
    for node in loaded[name]["nodes"]:
        assert node["registered"], f"{name}: node type {node['type']} is missing in the editor"
        info = object_info[node["type"]]
        shown = set(node["inputs"]) | {w["name"] for w in node["widgets"]}
        declared = {n for n, _, _ in _input_specs(info)}
        assert declared <= shown, f"{name}: {node['type']} does not show {declared - shown}"
        assert node["outputs"] == info["output_name"], f"{name}: {node['type']} outputs"
        if node["type"].startswith("EACPS_"):
            assert node["description"], f"{name}: {node['type']} has no description in the editor"


@pytest.mark.parametrize("name", NAMES)
def test_widget_values_equal_the_file(loaded, object_info, name):
    declared = {n["type"]: {i for i, _, _ in _input_specs(object_info[n["type"]])} | {"control_after_generate"}
                for n in loaded[name]["nodes"]}
    by_id = {n["id"]: n for n in loaded[name]["file"]["nodes"]}
    for node in loaded[name]["nodes"]:
        # widgets the file stores: the declared ones and seed's control (not e.g. LoadImage's upload button)
        values = [w["value"] for w in node["widgets"] if w["name"] in declared[node["type"]]]
        assert values == by_id[node["id"]]["widgets_values"], f"{name}: {node['type']} (node {node['id']})"


@pytest.mark.parametrize("name", NAMES)
def test_the_submitted_prompt_equals_the_one_tests_build(loaded, object_info, name):
    expected = ui_to_api(loaded[name]["file"], object_info)
    submitted = {k: {"class_type": v["class_type"], "inputs": v["inputs"]} for k, v in loaded[name]["prompt"].items()}
    assert submitted == expected


def _overlap(a, b) -> bool:
    ax, ay, aw, ah = a
    bx, by, bw, bh = b
    return ax < bx + bw and bx < ax + aw and ay < by + bh and by < ay + ah


@pytest.mark.parametrize("name", NAMES)
def test_no_two_nodes_overlap(loaded, name):
    nodes = loaded[name]["nodes"]
    for node in nodes:
        assert node["size"][0] >= node["min"][0] and node["size"][1] >= node["min"][1], node
    clashes = [(a["title"], b["title"]) for i, a in enumerate(nodes) for b in nodes[i + 1:]
               if _overlap(a["bounding"], b["bounding"])]
    assert not clashes, f"{name}: overlapping nodes {clashes}"


@pytest.mark.parametrize("name", NAMES)
def test_it_opens_at_a_zoom_that_draws_text(loaded, name):
    view = loaded[name]["view"]
    assert view["low_quality"] is False, f"{name} opens at zoom {view['scale']:.2f}: nodes drawn without text"


def test_no_console_errors_from_the_pack(editor, loaded):
    # Offline noise that is not ours: the registry look-ups (blocked by the page's own CSP; they name
    # our node ids), 404s for user.css and the core template index.
    ours = [(kind, text) for kind, text in editor.console
            if kind in ("error", "pageerror") and ("eacps" in text.lower() or "/extensions/" + PACK_FOLDER_NAME in text)
            and "Content Security Policy" not in text]
    assert not ours, ours


# --- a search queued from the editor, on the tiny test models -------------------------------------

K_GLOBAL, M, K_LOCAL, STEPS = 4, 2, 2, 4


def _search_workflow(object_info, k_global=K_GLOBAL, steps=STEPS, max_sub_batch=8) -> dict:
    prompt = base_nodes()
    prompt.update({
        "verifier": {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}},
        "search": {"class_type": "EACPS_Search", "inputs": {
            "model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "vae": ["vae", 0], **sampler_settings(seed=5, steps=steps), "verifier_1": ["verifier", 0],
            "k_global": k_global, "m": M, "k_local": K_LOCAL, "mode": "slerp", "strength": 0.6, "generations": 1,
            "anneal": 0.5, "weights": "sharpness=1.0\nexposure=1.0", "prompt": "a red apple",
            "max_sub_batch": max_sub_batch}},
        "save": {"class_type": "EACPS_SaveImageWithReport",
                 "inputs": {"images": ["search", 0], "report": ["search", 5], "filename_prefix": "EACPS/browser"}},
    })
    return api_to_ui(prompt, object_info, {"search": "EACPS Search"})


def _queue(editor, ui: dict) -> int:
    page = editor.page
    page.evaluate("async (wf) => { await window.app.loadGraphData(wf); }", ui)
    start = len(editor.events)
    page.evaluate("async () => { await window.app.queuePrompt(0, 1); }")
    return start


def _wait_for(editor, start: int, kinds: set[str], timeout: float = 120) -> tuple:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in editor.events[start:]:
            if event[0] == "json" and event[1] in kinds:
                return event
        editor.page.wait_for_timeout(50)
    raise AssertionError(f"no {kinds} message in {timeout}s; server log:\n{editor.server.log()}")


@pytest.fixture(scope="module")
def search_run(editor, object_info, loaded):
    ui = _search_workflow(object_info)
    t0 = time.monotonic()
    start = _queue(editor, ui)
    done = _wait_for(editor, start, {"execution_success", "execution_error"})
    print(f"search ran in {time.monotonic() - t0:.1f}s")
    assert done[1] == "execution_success", done
    search_id = str(next(n["id"] for n in ui["nodes"] if n["type"] == "EACPS_Search"))
    save_id = str(next(n["id"] for n in ui["nodes"] if n["type"] == "EACPS_SaveImageWithReport"))
    # The frontend loads output images asynchronously; on a loaded machine that takes more than a
    # fixed pause. Wait for both nodes' pictures; if they never come, the tests that check them say so.
    try:
        editor.page.wait_for_function("""(ids) => ids.every(id => {
            const img = window.app.graph.getNodeById(Number(id))?.imgs?.[0];
            return img && img.complete && img.naturalWidth > 0;
        })""", arg=[search_id, save_id], timeout=30_000)
    except PlaywrightTimeoutError:
        pass
    editor.page.evaluate("() => window.app.canvas.draw(true, true)")
    shown = editor.page.evaluate("""(ids) => Object.fromEntries(ids.map(id => {
        const img = window.app.graph.getNodeById(Number(id))?.imgs?.[0];
        return [id, img ? {width: img.naturalWidth, height: img.naturalHeight, src: img.src} : null];
    }))""", [search_id, save_id])
    history = editor.server.get("/history")
    entry = next(h for h in history.values() if search_id in h["outputs"] and save_id in h["outputs"])
    screenshot = editor.screenshot("search_finished")
    if os.environ.get("EACPS_DOCS_SCREENSHOT"):  # refresh the README's picture of the pack in the editor
        shutil.copyfile(screenshot, REPO_ROOT / "docs" / "editor_search.png")
    return {"events": editor.events[start:], "search": search_id, "save": save_id, "shown": shown, "entry": entry}


def _progress_and_previews(events, node: str) -> list[tuple[int, bool]]:
    """(value, max, a preview came with it) for every progress message of ``node``, in order. ComfyUI
    sends a step's preview just before its progress message; anything else moves the bar alone."""
    out, preview = [], False
    for event in events:
        if event[0] == "binary":
            preview = True
        elif event[1] == "progress" and event[2]["node"] == node:
            out.append((event[2]["value"], event[2]["max"], preview))
            preview = False
    return out


def test_progress_moves_through_sampling_and_scoring(search_run):
    bar = _progress_and_previews(search_run["events"], search_run["search"])
    values = [v for v, _, _ in bar]
    total = bar[-1][1]
    assert values == sorted(values) and values[-1] == total, bar
    sampled = [v for v, _, preview in bar[:-1] if preview]  # the last preview is the grid
    assert sampled, f"no latent previews came with the sampler's progress: {bar}"
    # stage 1 samples K_GLOBAL candidates in one sub-batch: its last step is K_GLOBAL * STEPS
    stage1_end, stage2_first = K_GLOBAL * STEPS, min(v for v in sampled if v > K_GLOBAL * STEPS)
    assert any(stage1_end < v < stage2_first for v in values), (
        f"the bar stands still while stage 1 is scored (no value between {stage1_end} and {stage2_first}): {bar}")
    assert max(sampled) < total, f"the bar reaches 100% before the last candidates are scored: {bar}"


def test_the_search_node_ends_showing_the_candidate_grid(editor, search_run):
    from PIL import Image

    [grid] = search_run["entry"]["outputs"][search_run["search"]]["images"]
    shown = search_run["shown"][search_run["search"]]
    assert shown is not None, "the Search node shows no image after the run"
    grid_file = Image.open(editor.server.base_dir / grid["type"] / grid["subfolder"] / grid["filename"])
    assert (shown["width"], shown["height"]) == grid_file.size, (
        f"the Search node shows a {shown['width']}x{shown['height']} image (a latent preview?), not the "
        f"{grid_file.width}x{grid_file.height} candidate grid")


def test_the_save_node_shows_the_result_image(search_run):
    [image] = search_run["entry"]["outputs"][search_run["save"]]["images"]
    shown = search_run["shown"][search_run["save"]]
    assert shown is not None and image["filename"] in shown["src"], shown


def test_cancel_stops_a_long_search(editor, object_info, search_run):
    ui = _search_workflow(object_info, k_global=48, steps=40, max_sub_batch=1)
    start = _queue(editor, ui)
    _wait_for(editor, start, {"progress"}, timeout=60)
    t0 = time.monotonic()
    editor.page.evaluate("async () => { await window.app.extensionManager.command.execute('Comfy.Interrupt'); }")
    done = _wait_for(editor, start, {"execution_interrupted", "execution_success", "execution_error"}, timeout=60)
    stopped_after = time.monotonic() - t0
    editor.screenshot("search_cancelled")
    assert done[1] == "execution_interrupted", done
    assert stopped_after < 5, f"Cancel took {stopped_after:.1f}s"
