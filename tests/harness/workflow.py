"""Workflow formats: the UI format (what the graph editor saves and example_workflows/ holds) and
the API format (what POST /prompt takes). The conversion follows the frontend's rules, using the
host's /object_info for each node's input order and widget kinds."""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
NOTE_TYPES = {"Note", "MarkdownNote"}
MODE_MUTED, MODE_BYPASSED = 2, 4


def _input_specs(info: Mapping) -> list[tuple[str, str, dict]]:
    """(name, type, options) of every input in the order the frontend lays widgets out."""
    specs = []
    order = info.get("input_order", {})
    for group in ("required", "optional"):
        defs = info["input"].get(group, {})
        for name in order.get(group, list(defs)):
            spec = defs[name]
            kind = "COMBO" if isinstance(spec[0], list) else spec[0]
            specs.append((name, kind, spec[1] if len(spec) > 1 else {}))
    return specs


def _is_widget(kind: str, options: dict) -> bool:
    return kind in WIDGET_TYPES and not options.get("forceInput", False)


def _has_control_widget(name: str, kind: str, options: dict) -> bool:
    return kind == "INT" and (options.get("control_after_generate") or name in ("seed", "noise_seed"))


def ui_to_api(workflow: Mapping, object_info: Mapping) -> dict:
    """Convert a UI-format workflow to an API-format prompt (node ids as strings)."""
    nodes = {n["id"]: n for n in workflow["nodes"]}
    links = {link[0]: link for link in workflow.get("links", [])}
    prompt: dict[str, dict] = {}
    for node in workflow["nodes"]:
        if node["type"] in NOTE_TYPES or node.get("mode", 0) in (MODE_MUTED, MODE_BYPASSED):
            continue
        if node["type"] not in object_info:
            raise KeyError(f"node {node['id']}: type {node['type']!r} is not registered in this ComfyUI")
        info = object_info[node["type"]]
        values = list(node.get("widgets_values") or [])
        connected = {i["name"]: i.get("link") for i in node.get("inputs", []) if i.get("link") is not None}
        inputs: dict = {}
        for name, kind, options in _input_specs(info):
            if _is_widget(kind, options):
                if not values:
                    raise ValueError(f"node {node['id']} ({node['type']}): no widget value left for {name!r}")
                inputs[name] = values.pop(0)
                if _has_control_widget(name, kind, options):
                    values.pop(0)  # "fixed" / "randomize" / ...: a frontend-only widget
            if name in connected:
                link = links[connected[name]]
                source = nodes[link[1]]
                if source.get("mode", 0) == MODE_BYPASSED:
                    raise ValueError(f"node {node['id']}: input {name!r} comes from a bypassed node")
                inputs[name] = [str(link[1]), link[2]]
        prompt[str(node["id"])] = {"class_type": node["type"], "inputs": inputs}
    return prompt


# LiteGraph's node geometry (frontend 1.32.9, measured with computeSize()): title bar above pos,
# one row per input socket / output, one per widget, taller multiline text boxes.
TITLE_H, SLOT_H, WIDGET_H, MULTILINE_H, BASE_H, IMAGE_H = 30, 20, 24, 54, 14, 280
MIN_W, CHAR_W = 340, 7.5
GAP_X, GAP_Y = 60, 40
OPEN_SCALE = 0.8


def node_size(info: Mapping, title: str) -> tuple[int, int]:
    """A size at least as large as the frontend's computeSize() for this node (it enlarges smaller
    stored sizes itself, which would then overlap the next node of a layout made with the small one)."""
    rows, widgets, multiline = 0, 0, 0
    for name, kind, options in _input_specs(info):
        if _is_widget(kind, options):
            if kind == "STRING" and options.get("multiline"):
                multiline += 1
            elif options.get("image_upload"):  # combo + upload button + the picture's preview
                multiline += IMAGE_H / MULTILINE_H
            else:
                widgets += 1 + _has_control_widget(name, kind, options)
        else:
            rows += 1
    rows = max(rows, len(info.get("output", [])))
    height = round(BASE_H + SLOT_H * rows + WIDGET_H * widgets + MULTILINE_H * multiline)
    return max(MIN_W, round(CHAR_W * len(title) + 60)), height


def _place(ui_nodes: list[dict], columns: list[int]) -> None:
    """Columns by graph depth, each as wide as its widest node; nodes stacked by their real heights."""
    widths: dict[int, int] = {}
    for node, col in zip(ui_nodes, columns, strict=True):
        widths[col] = max(widths.get(col, 0), node["size"][0])
    x, lefts = 40, {}
    for col in sorted(widths):
        lefts[col] = x
        x += widths[col] + GAP_X
    tops: dict[int, int] = {}
    for node, col in zip(ui_nodes, columns, strict=True):
        y = tops.get(col, 40 + TITLE_H)
        node["pos"] = [lefts[col], y]
        tops[col] = y + node["size"][1] + TITLE_H + GAP_Y


def api_to_ui(prompt: Mapping, object_info: Mapping, titles: Mapping[str, str] | None = None) -> dict:
    """Lay out an API-format prompt as a UI-format workflow (columns by graph depth).

    Used to generate example_workflows/ from a readable Python description, so every widget
    value and link is checked against the host's node definitions when the file is written.
    """
    titles = titles or {}
    ids = {key: i + 1 for i, key in enumerate(prompt)}
    depth: dict[str, int] = {}

    def node_depth(key: str) -> int:
        if key not in depth:
            ups = [v[0] for v in prompt[key]["inputs"].values() if isinstance(v, list) and len(v) == 2]
            depth[key] = 1 + max((node_depth(u) for u in ups), default=-1)
        return depth[key]

    for key in prompt:
        node_depth(key)
    ui_nodes, ui_links = [], []
    outputs_links: dict[tuple[str, int], list[int]] = {}
    for key, node in prompt.items():
        info = object_info[node["class_type"]]
        widgets, inputs = [], []
        for name, kind, options in _input_specs(info):
            value = node["inputs"].get(name)
            linked = isinstance(value, list) and len(value) == 2 and isinstance(value[0], str)
            if _is_widget(kind, options):
                if linked:
                    raise ValueError(f"{key}.{name}: widget inputs take values here, not links")
                if value is None:
                    value = options.get("default")
                    if value is None and kind == "COMBO":
                        value = info["input"].get("required", {}).get(name, [[None]])[0][0]
                widgets.append(value)
                if _has_control_widget(name, kind, options):
                    widgets.append("fixed")
            elif linked:
                link_id = len(ui_links) + 1
                src_key, slot = value
                src_type = object_info[prompt[src_key]["class_type"]]["output"][slot]
                ui_links.append([link_id, ids[src_key], slot, ids[key], len(inputs), src_type])
                outputs_links.setdefault((src_key, slot), []).append(link_id)
                inputs.append({"name": name, "type": kind, "link": link_id})
            elif value is not None:
                raise ValueError(f"{key}.{name}: {kind} inputs must be linked")
        ui_nodes.append({
            "id": ids[key], "type": node["class_type"], "pos": [0, 0],
            "size": list(node_size(info, titles.get(key) or info.get("display_name") or node["class_type"])),
            "flags": {}, "order": 0, "mode": 0, "inputs": inputs, "outputs": [],
            "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets,
            **({"title": titles[key]} if key in titles else {}),
        })
    _place(ui_nodes, [depth[key] for key in prompt])
    for key, ui_node in zip(prompt, ui_nodes, strict=True):
        info = object_info[prompt[key]["class_type"]]
        ui_node["outputs"] = [
            {"name": name, "type": kind, "links": outputs_links.get((key, slot), []), "slot_index": slot}
            for slot, (name, kind) in enumerate(zip(info["output_name"], info["output"], strict=True))
        ]
    for order, key in enumerate(sorted(prompt, key=lambda k: depth[k])):
        ui_nodes[list(prompt).index(key)]["order"] = order
    return {
        "last_node_id": len(ui_nodes), "last_link_id": len(ui_links), "nodes": ui_nodes,
        "links": ui_links, "groups": [], "config": {},
        # Open at a zoom where the frontend draws text (it drops text below ~0.57), the top-left
        # corner clear of the side and top bars: fitting a wide graph to the window would shrink it past that.
        "extra": {"ds": {"scale": OPEN_SCALE, "offset": [80, 80]}}, "version": 0.4,
    }


def swap_nodes(prompt: Mapping, rules: Mapping[str, Callable[[dict], dict[int, dict]]]) -> dict:
    """A copy of ``prompt`` with nodes of the given types swapped out (e.g. model loaders and text
    encoders swapped for the tiny test models, so a real workflow runs on the CPU).

    ``rules[class_type](node)`` returns {output_slot: replacement_node}. Each replacement becomes a
    node of its own, and every link to (node, slot) is rewired to it. Links to a slot the rule
    does not replace are an error, so a swap can never leave a dangling input.
    """
    out = copy.deepcopy(dict(prompt))
    rewired: dict[tuple[str, int], list] = {}
    for key, node in list(out.items()):
        rule = rules.get(node["class_type"])
        if rule is None:
            continue
        del out[key]
        for slot, replacement in rule(node).items():
            new_key = f"{key}.{slot}"
            out[new_key] = replacement
            rewired[(key, slot)] = [new_key, 0]
    for key, node in out.items():
        for name, value in node["inputs"].items():
            if isinstance(value, list) and len(value) == 2 and isinstance(value[0], str):
                if value[0] in prompt and value[0] not in out:
                    if (value[0], value[1]) not in rewired:
                        raise KeyError(f"{key}.{name} links to output {value[1]} of a swapped-out node {value[0]}")
                    node["inputs"][name] = list(rewired[(value[0], value[1])])
    return out
