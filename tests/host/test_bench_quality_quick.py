"""The quality benchmark's machinery runs end to end in its quick mode and writes every required key.

Runs bench/quality.py --quick in a subprocess (ComfyUI boots once per process, and this test session
already has one), started when the session collects this test (harness/background.py). Asserts structure and the NFE bookkeeping only: quality numbers never go in tests.
"""

from __future__ import annotations

import json

import pytest

from harness import background

pytestmark = pytest.mark.host


def test_quality_quick_writes_the_curve_and_the_comparisons():
    returncode, output, tmp_path = background.finish("quality.py")
    assert returncode == 0, output
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"meta", "settings", "methods", "total_wall_s", "total_cpu_s"} <= set(results)
    assert "command" in results["meta"]
    s = results["settings"]
    methods = results["methods"]
    pool, steps = s["pool"], s["model"]["steps"]
    records = [json.loads(line) for line in (tmp_path / "cases-0-of-1.jsonl").read_text().splitlines()]
    assert [r["index"] for r in records] == list(range(s["prompts"]))
    for r in records:
        assert len(r["pool"]["v"]) == len(r["pool"]["e"]) == len(r["pool"]["seeds"]) == pool
        assert r["pool"]["seeds"][0] == r["seed"]  # candidate 0 is the prompt's own seed
        assert set(r["outcomes"]) == set(methods)
    assert {f"best_of_{n}" for n in range(1, pool + 1)} <= set(methods)
    searches = [r for r in methods.values() if r["family"] == "eacps"]
    assert searches
    for r in methods.values():
        assert r["prompts"] == s["prompts"]
        assert 0.0 <= r["mean_e"] <= 1.0
    # NFE as counted by EACPSLab_CountNFE: euler makes one model call per step, with a conditional and
    # an unconditional row per candidate unless cfg is 1 (ComfyUI then skips the unconditional)
    per_candidate = steps * (1 if s["model"]["cfg"] == 1.0 else 2)
    for r in methods.values():
        assert r["mean_nfe"] == pytest.approx(r["n"] * per_candidate)
    for r in searches:
        vs = r["vs_best_of_n"]
        assert vs["baseline"] == f"best_of_{r['n']}"
        assert vs["win"] + vs["tie"] + vs["loss"] == s["prompts"]
    assert (tmp_path / "results.md").read_text().startswith("# EACPS quality benchmark")
    assert (tmp_path / "e_vs_nfe.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
