"""One search over several real ComfyUI instances: the in-process host searches, real ComfyUI HTTP
servers on loopback are its workers (each with this pack and the tiny test models)."""

from __future__ import annotations

import contextlib
import importlib
import json
import re
import threading
import time

import pytest
import torch

from harness.paths import make_base_dir
from harness.server import ComfyServer, QuietHandler, _free_port, loopback_http
from host.graphs import capture, one_node_prompt, search_node, two_stage_prompt

# host: the searching instance is in-process. server: the tests that start ComfyUI servers as workers
# (the refusal tests need none, so the mutation runner, which leaves -m server out, still runs them).
pytestmark = pytest.mark.host


@pytest.fixture(scope="module")
def second_server(tmp_path_factory):
    base = make_base_dir(tmp_path_factory.mktemp("worker_b"))
    srv = ComfyServer(base, base / "server.log")
    yield srv
    srv.stop()


@pytest.fixture
def doomed_server(tmp_path_factory):
    """A worker the test may kill."""
    base = make_base_dir(tmp_path_factory.mktemp("worker_doomed"))
    srv = ComfyServer(base, base / "server.log")
    yield srv
    srv.stop()


@contextlib.contextmanager
def bar_updates():
    """(value, total) of every ComfyUI progress-bar update made inside the block (the hook the
    server uses to send them to the browser)."""
    comfy_utils = importlib.import_module("comfy.utils")
    updates = []
    comfy_utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    try:
        yield updates
    finally:
        comfy_utils.set_progress_bar_global_hook(None)


def workers_node(*urls: str, include_local: bool = True) -> dict:
    return {"class_type": "EACPS_Workers",
            "inputs": {"urls": "\n".join(urls), "auth_env": "", "include_local": include_local, "timeout_s": 120.0}}


def _search_prompt(workers: dict | None, **settings) -> dict:
    p = one_node_prompt(search_node(**settings))
    if workers is not None:
        p["workers"] = workers
        p["one"]["inputs"]["workers"] = ["workers", 0]
    return p


def _run(comfy, captured, prompt) -> tuple[dict, torch.Tensor, torch.Tensor]:
    comfy.run(prompt)
    return json.loads(captured["one_report"]), captured["one_latent"]["samples"].clone(), captured["one_image"].clone()


def _same_candidates(local: dict, remote: dict) -> None:
    assert remote["winner"] == local["winner"] and remote["winner_seed"] == local["winner_seed"]
    for a, b in zip(local["candidates"], remote["candidates"], strict=True):
        assert (a["recipe"], a["scores"], a["potential"]) == (b["recipe"], b["scores"], b["potential"]), a["id"]


SETTINGS = dict(seed=41, k_global=8, m=2, k_local=3, max_sub_batch=2, steps=4)


@pytest.mark.server
@pytest.mark.mutation_server
def test_search_over_two_workers_equals_the_local_search(comfy, captured, server, second_server):
    local, local_latent, local_image = _run(comfy, captured, _search_prompt(None, **SETTINGS))
    with bar_updates() as progress:
        remote, remote_latent, remote_image = _run(
            comfy, captured, _search_prompt(workers_node(server.url, second_server.url, include_local=False),
                                            **SETTINGS))
    # the bar moves forward as the workers' sub-batches come back, and ends full
    assert progress and all(b[0] >= a[0] for a, b in zip(progress, progress[1:], strict=False)), progress
    assert progress[-1][0] == progress[-1][1], progress
    _same_candidates(local, remote)
    assert torch.equal(local_latent, remote_latent)
    assert torch.equal(local_image, remote_image)
    ran_on = {c["ran_on"] for c in remote["candidates"]}
    assert ran_on == {server.url, second_server.url}, ran_on  # both took sub-batches; none ran here
    assert all(c["timings"]["round_trip"] > 0 for c in remote["candidates"])
    assert remote["setup"]["workers"]["urls"] == [server.url, second_server.url]


@pytest.mark.server
def test_pruned_search_over_a_worker_equals_the_local_one(comfy, captured, server):
    """Successive halving on workers: screening runs, x0 previews and chains continued from their saved
    latents (sent with the job) give the local run's candidates, fates and winner."""
    def pruned(workers):
        p = _search_prompt(workers, seed=47, k_global=8, m=2, k_local=2, max_sub_batch=2, steps=6)
        p["one"]["inputs"].update(prune_steps="3", prune_keep=0.5, prune_kind="chain")
        return p

    local, local_latent, _ = _run(comfy, captured, pruned(None))
    remote, remote_latent, _ = _run(comfy, captured, pruned(workers_node(server.url, include_local=False)))
    _same_candidates(local, remote)
    assert [c["fate"] for c in local["candidates"]] == [c["fate"] for c in remote["candidates"]]
    assert any(c["fate"].startswith("pruned") for c in remote["candidates"])
    assert torch.equal(local_latent, remote_latent)
    assert {c["ran_on"] for c in remote["candidates"]} == {server.url}
    assert remote["compute"]["nfe"] == local["compute"]["nfe"] > 0, (remote["compute"], local["compute"])
    assert remote["compute"]["calls"] == local["compute"]["calls"]


@pytest.mark.server
def test_five_node_graph_with_workers_and_a_local_share(comfy, captured, server):
    settings = dict(seed=43, k_global=6, m=2, k_local=2, max_sub_batch=1)
    comfy.run(two_stage_prompt(**settings))
    local = json.loads(captured["report"])
    p = two_stage_prompt(**settings)
    p["workers"] = workers_node(server.url)
    p["global"]["inputs"]["workers"] = ["workers", 0]
    p["local"]["inputs"]["workers"] = ["workers", 0]
    comfy.run(p)
    remote = json.loads(captured["report"])
    _same_candidates(local, remote)
    assert {c["ran_on"] for c in remote["candidates"]} <= {"local", server.url}


def _not_a_worker(body_for_object_info: dict) -> type[QuietHandler]:
    """A loopback HTTP service that is not an EACPS worker (answers /object_info with ``body``)."""

    class Handler(QuietHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            data = json.dumps(body_for_object_info).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.mark.parametrize("case", ["unreachable", "no_pack", "other_version"])
def test_bad_workers_are_refused_before_sampling(comfy, case):
    with contextlib.ExitStack() as stack:
        if case == "unreachable":
            url, words = f"http://127.0.0.1:{_free_port()}", "did not answer"
        elif case == "no_pack":
            url = stack.enter_context(loopback_http(_not_a_worker({})))
            words = (f"worker {url} answers but has no EACPS pack (no EACPS_WorkerSample node): install the pack "
                     "there, version 0.1.0")
        else:
            url = stack.enter_context(loopback_http(_not_a_worker({"EACPS_WorkerSample": {"input": {"required": {
                "pack_version": ["STRING", {"default": "0.0.1"}]}}}})))
            words = "runs EACPS 0.0.1"
        with bar_updates() as progress:
            result = comfy.run(_search_prompt(workers_node(url), **SETTINGS), expect_success=False)
    assert not result.success
    assert url in result.error() and words in result.error(), result.error()
    if case == "no_pack":  # the whole sentence, as the node's error shows it
        assert re.search(rf"(^|: ){re.escape(words)}$", result.error().strip()), result.error()
    assert not progress, "sampling started before the workers were checked"


def _wait_running(srv: ComfyServer, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not srv.get("/queue")["queue_running"]:
        assert time.monotonic() < deadline, f"the worker never started a job:\n{srv.log()}"
        time.sleep(0.02)


LONG = dict(seed=45, k_global=12, m=1, k_local=1, max_sub_batch=2, steps=40)


@pytest.mark.server
def test_cancel_interrupts_the_workers_jobs(comfy, second_server):
    p = _search_prompt(workers_node(second_server.url, include_local=False), **LONG)
    p["cap_one_report"] = capture(["one", 5], "one_report")

    def cancel_when_busy():
        _wait_running(second_server)
        comfy.nodes.interrupt_processing()

    canceller = threading.Thread(target=cancel_when_busy)
    canceller.start()
    result = comfy.run(p, expect_success=False)
    canceller.join()
    assert "execution_interrupted" in [m[0] for m in result.status_messages], result.status_messages
    deadline = time.monotonic() + 5
    while second_server.get("/queue")["queue_running"] or second_server.get("/queue")["queue_pending"]:
        assert time.monotonic() < deadline, "the worker kept running the search's job after Cancel"
        time.sleep(0.05)


@pytest.mark.server
def test_a_worker_killed_mid_search_loses_nothing(comfy, captured, doomed_server):
    local, local_latent, _ = _run(comfy, captured, _search_prompt(None, **LONG))

    def kill_when_busy():
        _wait_running(doomed_server)
        doomed_server.proc.kill()

    killer = threading.Thread(target=kill_when_busy)
    killer.start()
    remote, remote_latent, _ = _run(comfy, captured, _search_prompt(workers_node(doomed_server.url), **LONG))
    killer.join()
    assert doomed_server.proc.poll() is not None, "the worker was not killed"
    _same_candidates(local, remote)
    assert torch.equal(local_latent, remote_latent)


@pytest.mark.server
@pytest.mark.mutation_server
def test_a_job_that_fails_on_the_worker_fails_at_once_with_the_workers_reason(comfy, second_server):
    """A worker's prompt that ends in error (here: interrupted from the worker's own queue, as its
    user's Cancel would) is a failure of that worker now, with ComfyUI's reason, not a wait until
    the workers' timeout (60 s here: the worker is interrupted within its first sub-batch)."""
    p = _search_prompt(workers_node(second_server.url, include_local=False), **LONG)
    p["workers"]["inputs"]["timeout_s"] = 60.0

    def interrupt_on_the_worker():
        _wait_running(second_server)
        second_server.post("/interrupt", {})

    interrupter = threading.Thread(target=interrupt_on_the_worker)
    interrupter.start()
    result = comfy.run(p, expect_success=False)
    interrupter.join()
    error = result.error()
    assert "no instance is left" in error and second_server.url in error, error
    assert "the sub-batch failed there: interrupted on the worker" in error, error
    assert "longer than the workers' timeout" not in error


@pytest.mark.server
@pytest.mark.mutation_server
def test_a_sub_batch_that_outlasts_the_workers_timeout_fails_that_worker_saying_so(comfy, second_server):
    p = _search_prompt(workers_node(second_server.url, include_local=False),
                       **{**LONG, "k_global": 2, "k_local": 1, "steps": 1000})
    p["workers"]["inputs"]["timeout_s"] = 1.0  # the least allowed; a 1000-step sub-batch takes longer here
    result = comfy.run(p, expect_success=False)
    assert (f"no instance is left to run the search's remaining sub-batches: {second_server.url}: the sub-batch "
            "took longer than the workers' timeout. Fix the workers") in result.error(), result.error()
