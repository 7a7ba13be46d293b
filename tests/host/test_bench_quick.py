"""The benchmark runs end to end in its smallest mode and writes every required key.

Runs bench/bench.py --quick in a subprocess (ComfyUI boots once per process, and this test session
already has one), started when the session collects this test (harness/background.py). Asserts structure only: timings never go in tests.
"""

from __future__ import annotations

import json

import pytest

from harness import background

pytestmark = pytest.mark.host


def test_bench_quick_writes_all_parts():
    returncode, output, tmp_path = background.finish("bench.py")
    assert returncode == 0, output
    results = json.loads((tmp_path / "results.json").read_text())
    assert {"meta", "settings", "models", "verifiers"} <= set(results)
    for key in ("device", "cpu_count", "torch", "comfyui", "python", "date", "command"):
        assert key in results["meta"]
    tiny = results["models"]["tiny"]
    assert {"spec", "overhead", "memory", "scaling"} <= set(tiny)
    overhead = tiny["overhead"]
    assert {"b_stock_one_by_one", "a_eacps_S2", "c_stock_batched_S2"} <= set(overhead["times"])
    assert {"eacps_over_b", "eacps_over_c", "eacps_over_c_matched"} <= set(overhead["ratios"]["S2"])
    assert {"start_mb", "end_mb", "max_mb", "slope_mb_per_search", "leak"} <= set(tiny["memory"]["rss"])
    assert set(tiny["scaling"]["fits"]) == {"a", "b", "c"}
    rows = results["verifiers"]["rows"]
    assert rows and all({"batched", "one_by_one", "fraction_of_sampling"} <= set(r) for r in rows.values())
    assert (tmp_path / "results.md").read_text().startswith("# EACPS benchmark")
    assert (tmp_path / "time_vs_n.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
