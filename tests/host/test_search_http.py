"""The EACPS graph through a real ComfyUI HTTP server: the full two-stage search, and Cancel."""

from __future__ import annotations

import json
import time

import pytest

from host.graphs import two_stage_prompt
from host.test_search_nodes import check_two_stage_report

pytestmark = [pytest.mark.host, pytest.mark.server]


def with_report_preview(prompt: dict) -> dict:
    prompt["show_report"] = {"class_type": "PreviewAny", "inputs": {"source": ["elite2", 5]}}
    return prompt


def test_full_two_stage_graph_over_http(server):
    entry = server.wait(server.queue(with_report_preview(two_stage_prompt(seed=21, captures=False))))
    assert entry["status"]["status_str"] == "success", entry["status"]
    report = json.loads(entry["outputs"]["show_report"]["text"][0])
    check_two_stage_report(report)
    assert len(entry["outputs"]["save"]["images"]) == 1


def test_interrupt_stops_a_long_search_and_the_next_prompt_runs(server):
    # 48 candidates x 40 steps one at a time: many seconds on the tiny model
    long = two_stage_prompt(seed=987, k_global=48, steps=40, max_sub_batch=1, captures=False)
    prompt_id = server.queue(long)
    deadline = time.monotonic() + 60
    while not server.get("/queue")["queue_running"]:
        assert time.monotonic() < deadline, "the long search never started"
        time.sleep(0.05)
    time.sleep(1.5)  # well inside stage 1's sampling
    t0 = time.monotonic()
    server.post("/interrupt")
    entry = server.wait(prompt_id, timeout=60)
    stopped_after = time.monotonic() - t0
    kinds = [m[0] for m in entry["status"]["messages"]]
    assert "execution_interrupted" in kinds, entry["status"]
    assert entry["status"]["status_str"] == "error"
    assert stopped_after < 10, f"Cancel took {stopped_after:.1f}s"
    interrupted = next(m[1] for m in entry["status"]["messages"] if m[0] == "execution_interrupted")
    assert interrupted["node_id"] == "global"

    entry = server.wait(server.queue(with_report_preview(two_stage_prompt(seed=22, captures=False))))
    assert entry["status"]["status_str"] == "success", entry["status"]
    check_two_stage_report(json.loads(entry["outputs"]["show_report"]["text"][0]))
