"""Every input of every EACPS node, as the real server describes it in /object_info, is refused with a
message naming it when it gets a value of the wrong type, out of range, non-finite or missing
(null) - at validation, or at the latest when the node starts, before any sampling. Issue 12 item 3.

Per input only the telling cases are sent (null, NaN, +-inf, a wrong type, one step past each bound,
an unknown choice), so the whole fuzz stays well under a minute."""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.request
import uuid

import pytest

from host.graphs import best_of_n_node, capture, one_node_prompt, search_node, two_stage_prompt

pytestmark = [pytest.mark.host, pytest.mark.server]

SMALL = {"k_global": 2, "m": 1, "k_local": 1, "steps": 1}


def _two_stage() -> dict:
    p = two_stage_prompt(captures=False, **SMALL)
    p["save"] = {"class_type": "EACPS_SaveImageWithReport",
                 "inputs": {"images": ["elite2", 1], "report": ["elite2", 5], "filename_prefix": "fuzz"}}
    return p


def _one_node(node: dict) -> dict:
    p = one_node_prompt(node, key="one", captures=False)
    p["show"] = {"class_type": "PreviewImage", "inputs": {"images": ["one", 0]}}
    return p


# class_type -> (prompt builder, key of the node under test); loaders get a prompt of their own
GRAPHS = {
    "EACPS_SeedSearchGlobal": (_two_stage, "global"),
    "EACPS_VerifierScore": (_two_stage, "score1"),
    "EACPS_WeightedPotential": (_two_stage, "pot1"),
    "EACPS_EliteSelect": (_two_stage, "elite1"),
    "EACPS_LocalSeedRefine": (_two_stage, "local"),
    "EACPS_SaveImageWithReport": (_two_stage, "save"),
    "EACPS_LoadTechnicalVerifier": (_two_stage, "verifier"),
    "EACPS_Search": (lambda: _one_node(search_node(**SMALL)), "one"),
    "EACPS_BestOfN": (lambda: _one_node(best_of_n_node(n=2, steps=1)), "one"),
}


def _loader_graph(class_type: str, info: dict):
    def build() -> dict:
        inputs = {}
        for name, spec in {**info["input"].get("required", {}), **info["input"].get("optional", {})}.items():
            value = _default(spec)
            if value is not None:
                inputs[name] = value
        return {"t": {"class_type": class_type, "inputs": inputs}, "cap": capture(["t", 0], "fuzz")}
    return build, "t"


def _widget(spec) -> tuple[str, dict] | None:
    kind, opts = spec[0], (spec[1] if len(spec) > 1 else {})
    if isinstance(kind, list):
        return "COMBO", {**opts, "options": kind}
    if kind in ("INT", "FLOAT", "STRING", "BOOLEAN", "COMBO") and not opts.get("forceInput"):
        return kind, opts
    return None


def _default(spec):
    w = _widget(spec)
    if w is None:
        return None
    kind, opts = w
    if "default" in opts:
        return opts["default"]
    return opts["options"][0] if kind == "COMBO" and opts.get("options") else None


def cases(kind: str, opts: dict) -> list:
    """The telling bad values for one widget. STRING and BOOLEAN nulls are left out: ComfyUI itself
    turns them into "None" / False before any node sees them."""
    if kind in ("INT", "FLOAT"):
        out = [None, math.nan, math.inf, -math.inf, "abc"]
        step = 1 if kind == "INT" else 0.5
        if opts.get("min") is not None:
            out.append(opts["min"] - step)
        if opts.get("max") is not None and opts["max"] < 2**63:
            out.append(opts["max"] + step)
        return out
    if kind == "COMBO":
        return [None, "no_such_choice_xyz"]
    return []


def _post(server, prompt: dict):
    body = json.dumps({"prompt": prompt, "client_id": str(uuid.uuid4())}).encode()  # NaN/Infinity as Python writes them
    req = urllib.request.Request(server.url + "/prompt", data=body, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return json.loads(r.read())["prompt_id"], None
    except urllib.error.HTTPError as e:
        return None, json.loads(e.read())


def _names(refused: dict, key: str, name: str) -> bool:
    """Whether one of the errors ComfyUI reports for node ``key`` names input ``name`` in its text.
    ComfyUI writes a node's own validation message as details "<input> - <message>" once per input,
    so only the message part counts there."""
    for error in refused.get("node_errors", {}).get(key, {}).get("errors", []):
        details = str(error.get("details", ""))
        if error.get("type") == "custom_validation_failed":
            details = details.split(" - ", 1)[-1]
        if re.search(rf"\b{re.escape(name)}\b", details):
            return True
    return False


def test_every_widget_of_every_node_refuses_bad_values_naming_the_input(server):
    info = server.get("/object_info")
    ours = {k: v for k, v in info.items() if k.startswith("EACPS_")}
    assert len(ours) >= 15, sorted(ours)
    tried, failures = 0, []
    for class_type, node_info in sorted(ours.items()):
        build, key = GRAPHS.get(class_type) or _loader_graph(class_type, node_info)
        specs = {**node_info["input"].get("required", {}), **node_info["input"].get("optional", {})}
        for name, spec in specs.items():
            w = _widget(spec)
            if w is None:
                continue
            for bad in cases(*w):
                if bad is None and name in node_info["input"].get("optional", {}):
                    continue  # an optional input given as null is an input left out: its default applies
                prompt = build()
                assert prompt[key]["class_type"] == class_type
                prompt[key]["inputs"][name] = bad
                tried += 1
                prompt_id, refused = _post(server, prompt)
                if refused is not None:
                    if not _names(refused, key, name):
                        failures.append(f"{class_type}.{name}={bad!r}: refused without naming it: "
                                        f"{json.dumps(refused)[:400]}")
                    continue
                entry = server.wait(prompt_id, timeout=60)
                status = entry["status"]
                errors = [m[1] for m in status["messages"] if m[0] == "execution_error"]
                if status["status_str"] == "success":
                    failures.append(f"{class_type}.{name}={bad!r}: accepted and ran")
                elif not errors or not re.search(rf"\b{re.escape(name)}\b", errors[0]["exception_message"]):
                    failures.append(f"{class_type}.{name}={bad!r}: failed without naming it: {errors[:1]}")
                elif errors[0]["node_id"] != key:
                    failures.append(f"{class_type}.{name}={bad!r}: failed in node {errors[0]['node_id']}, not {key}")
    print(f"{tried} bad values tried over {len(ours)} nodes")
    assert tried > 200
    assert not failures, f"{len(failures)} of {tried} cases:\n" + "\n".join(failures)
