"""The workers' pure parts: address parsing, the graph sent to a worker, the version."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytestmark = pytest.mark.host


@pytest.fixture(autouse=True, scope="module")
def remote(comfy):
    """nodes/ imports ComfyUI's modules, which the in-process host puts on the path."""
    from eacps.nodes import remote

    return remote


def parse_urls(text):
    from eacps.nodes.remote import parse_urls

    return parse_urls(text)


def test_parse_urls_keeps_order_and_skips_comments():
    text = "http://127.0.0.1:8189/\n\n  # a comment\nhttps://gpu-box:8188  # second GPU\n"
    assert parse_urls(text) == ("http://127.0.0.1:8189", "https://gpu-box:8188")


@pytest.mark.parametrize("bad, words", [
    ("127.0.0.1:8188", "line 1"),
    ("ftp://host:21", "line 1"),
    ("http://a:8188\nhttp://a:8188", "listed twice"),
    ("http://host:99999", "bad port"),
])
def test_parse_urls_refuses_bad_lines(bad, words):
    from eacps.search.pool import SearchError

    with pytest.raises(SearchError, match=words):
        parse_urls(bad)


def test_a_line_that_is_no_address_is_quoted_with_an_example():
    from eacps.search.pool import SearchError

    with pytest.raises(SearchError) as err:
        parse_urls("http://a:1\n# b\ngpu-box:8188")
    assert str(err.value) == ("workers line 3: 'gpu-box:8188' is not an address like http://192.168.1.20:8188 "
                              "(scheme http or https, then host and port)")


def test_feeding_graph_takes_exactly_the_ancestors_of_the_sampling_inputs(remote):
    prompt = {
        "ckpt": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": "x.safetensors"}},
        "lora": {"class_type": "LoraLoader", "inputs": {"model": ["ckpt", 0], "clip": ["ckpt", 1]}},
        "pos": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["lora", 1], "text": "a cat"}},
        "neg": {"class_type": "CLIPTextEncode", "inputs": {"clip": ["lora", 1], "text": ""}},
        "latent": {"class_type": "EmptyLatentImage", "inputs": {"width": 64, "height": 64, "batch_size": 1}},
        "verifier": {"class_type": "EACPS_LoadTechnicalVerifier", "inputs": {"size": 64}},
        "workers": {"class_type": "EACPS_Workers", "inputs": {"urls": "http://h:1"}},
        "search": {"class_type": "EACPS_Search", "inputs": {
            "model": ["lora", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
            "vae": ["ckpt", 2], "verifier_1": ["verifier", 0], "workers": ["workers", 0], "seed": 3}},
        "save": {"class_type": "SaveImage", "inputs": {"images": ["search", 0]}},
    }
    graph = remote.feeding_graph(prompt, "search")
    assert set(graph.nodes) == {"ckpt", "lora", "pos", "neg", "latent"}
    assert graph.links == {"model": ["lora", 0], "positive": ["pos", 0], "negative": ["neg", 0],
                           "latent_image": ["latent", 0], "vae": ["ckpt", 2]}
    sent, node_id = graph.with_worker_node({"recipes": []})
    assert sent[node_id]["class_type"] == "EACPS_WorkerSample"
    assert sent[node_id]["inputs"]["model"] == ["lora", 0]
    assert sent[node_id]["inputs"]["pack_version"] == remote.PACK_VERSION
    assert "search" not in sent and "workers" not in sent and "verifier" not in sent


def test_feeding_graph_needs_the_prompt(remote):
    from eacps.search.pool import SearchError

    with pytest.raises(SearchError, match="PROMPT"):
        remote.feeding_graph(None, "1")


def test_pack_version_is_pyproject_version(remote):
    text = (Path(__file__).resolve().parents[2] / "pyproject.toml").read_text()
    assert re.search(r'^version = "([^"]+)"', text, re.M).group(1) == remote.PACK_VERSION


# ---- a sub-batch's trip to a worker and back, and the scheduler without a live worker ----------
def _setup(workers=None):
    """The SamplingSetup fields that job_for and run_distributed read (nodes/sampling.py)."""
    from types import SimpleNamespace

    from eacps.nodes.remote import FeedingGraph

    return SimpleNamespace(seed=7, steps=6, cfg=3.5, sampler_name="euler", scheduler="karras", denoise=0.8,
                           max_sub_batch=2, workers=workers, graph=FeedingGraph(nodes={}, links={}))


def test_a_continued_sub_batch_travels_as_json_and_comes_back_bit_for_bit(remote):
    import json

    import torch

    from eacps.search.noise import NoiseRecipe
    from eacps.search.stage import Task

    parent = NoiseRecipe(5)
    recipes = [parent, NoiseRecipe(9, "slerp", 0.25, parent)]
    gen = torch.Generator().manual_seed(0)
    states = [torch.randn(1, 4, 8, 8, generator=gen) for _ in recipes]
    tasks = [Task(r, 2, 6, 6, state=s, decode="x0") for r, s in zip(recipes, states, strict=True)]
    job = remote.job_for(_setup(), (2, 6, 6, "x0"), tasks)
    assert job["version"] == remote.PACK_VERSION
    assert job["sampling"] == {"seed": 7, "steps": 6, "cfg": 3.5, "sampler_name": "euler", "scheduler": "karras",
                               "denoise": 0.8, "max_sub_batch": 2}
    assert job["range"] == {"start": 2, "stop": 6, "steps": 6, "decode": "x0"}
    key, back = remote.tasks_from_job(json.loads(remote.job_text(job)))
    assert key == (2, 6, 6, "x0")
    assert [t.recipe for t in back] == recipes
    for t, s in zip(back, states, strict=True):
        assert (t.start, t.stop, t.steps, t.decode) == (2, 6, 6, "x0")
        assert torch.equal(t.state, s)
    # from the noise (start 0): no latents are sent, none come back
    fresh = remote.job_for(_setup(), (0, 3, 6, "none"), [Task(r, 0, 3, 6, decode="none") for r in recipes])
    assert "states" not in fresh
    key, back = remote.tasks_from_job(json.loads(remote.job_text(fresh)))
    assert key == (0, 3, 6, "none") and [t.state for t in back] == [None, None]


@pytest.mark.parametrize("decoded", [True, False])
def test_a_workers_results_file_is_read_back_exactly(remote, tmp_path, decoded):
    import torch
    from safetensors import safe_open
    from safetensors.torch import load

    from eacps.search.budget import Ledger
    from eacps.search.stage import Outcome

    gen = torch.Generator().manual_seed(3)
    outcomes = [Outcome(state=torch.randn(1, 4, 8, 8, generator=gen),
                        image=torch.rand(1, 64, 64, 3, generator=gen) if decoded else None,
                        nfe=6.0 + i, seconds=(("sampling", 0.5), ("decoding", 0.25)),
                        invalid=None if i == 0 else "non-finite latent") for i in range(2)]
    ledger = Ledger(calls=3, nfe=13.0, passes=6.5, steps=6, decodes=2, sampling_s=1.0, decoding_s=0.5,
                    cfg_batched=True, full_nfe=6.0)
    name = remote.worker_results_file(outcomes, ledger, str(tmp_path / "eacps_worker"))
    path = tmp_path / "eacps_worker" / name
    with safe_open(str(path), "pt") as f:  # safetensors' own reader, not the pack's
        meta = f.metadata()
        assert set(f.keys()) == ({"states", "images"} if decoded else {"states"})
    assert meta["version"] == remote.PACK_VERSION
    blob = path.read_bytes()
    assert remote._safetensors_metadata(blob) == meta
    out = {"tensors": load(blob), "meta": meta}
    back, back_ledger = remote._unpack(out, 2, 3.0, "http://w:1")
    assert back_ledger == ledger
    for i, (o, b) in enumerate(zip(outcomes, back, strict=True)):
        assert torch.equal(b.state, o.state)
        assert (b.image is None) if not decoded else torch.equal(b.image, o.image)
        assert (b.nfe, b.invalid, b.ran_on) == (6.0 + i, o.invalid, "http://w:1")
        assert b.seconds == (("sampling", 0.5), ("decoding", 0.25), ("round_trip", 1.5))  # 3 s over 2 candidates
    with pytest.raises(remote.WorkerFailure, match="returned 2 results for 3 candidates"):
        remote._unpack(out, 3, 1.0, "http://w:1")


def test_a_failed_jobs_reason_is_taken_from_comfys_status_messages(remote):
    error = {"status_str": "error", "completed": False, "messages": [
        ["execution_start", {"prompt_id": "p"}],
        ["execution_error", {"node_type": "KSampler", "exception_message": " CUDA out of memory\n"}]]}
    assert remote._error_text(error) == "KSampler: CUDA out of memory"
    assert remote._error_text({"messages": [["execution_interrupted", {}]]}) == "interrupted on the worker"
    assert remote._error_text({"status_str": "error", "messages": []}) == "error"


def _one_job_each(seeds):
    from eacps.search.noise import NoiseRecipe
    from eacps.search.stage import Task

    return [((0, 2, 2, "none"), [Task(NoiseRecipe(s), 0, 2, 2, decode="none")]) for s in seeds]


def _run_here(ran):
    import torch

    from eacps.search.budget import Ledger
    from eacps.search.stage import Outcome

    def run_local(key, tasks):
        ran.append(tasks[0].recipe.seed)
        return [Outcome(state=torch.full((1, 1), float(tasks[0].recipe.seed)), image=None, nfe=2.0)], Ledger(steps=2)

    return run_local


def test_a_dead_worker_is_retired_and_its_sub_batches_run_here(remote, comfy):
    from eacps.nodes.runner import Progress
    from harness.server import _free_port

    url = f"http://127.0.0.1:{_free_port()}"  # nothing listens there: connection refused
    ran = []
    setup = _setup(remote.Workers((url,), include_local=True, timeout_s=5.0))
    results = remote.run_distributed(setup, _one_job_each([1, 2, 3]), _run_here(ran), Progress(6), lambda: False)
    assert sorted(ran) == [1, 2, 3]
    assert [outcomes[0].state.item() for outcomes, _ in results] == [1.0, 2.0, 3.0]  # in the jobs' order
    assert [outcomes[0].ran_on for outcomes, _ in results] == ["local"] * 3
    assert [ledger.steps for _, ledger in results] == [2, 2, 2]


def test_without_a_local_share_a_dead_worker_fails_the_search_naming_it(remote, comfy):
    from eacps.nodes.runner import Progress
    from eacps.search.pool import SearchError
    from harness.server import _free_port

    url = f"http://127.0.0.1:{_free_port()}"
    ran = []
    setup = _setup(remote.Workers((url,), include_local=False, timeout_s=5.0))
    with pytest.raises(SearchError, match="no instance is left") as err:
        remote.run_distributed(setup, _one_job_each([1, 2]), _run_here(ran), Progress(4), lambda: False)
    assert url in str(err.value) and "did not answer" in str(err.value) and "include_local" in str(err.value)
    assert ran == []


def test_a_sub_batch_fails_the_search_after_three_failed_tries_unless_it_can_run_here(remote):
    # README: "every sub-batch at most 3 tries on workers"; with include_local the searching
    # instance runs it itself however often workers failed it.
    assert remote.MAX_ATTEMPTS == 3
    assert [remote.gives_up(t, include_local=False) for t in (1, 2, 3, 4)] == [False, False, True, True]
    assert [remote.gives_up(t, include_local=True) for t in (1, 2, 3, 4)] == [False, False, False, False]


def test_cancel_stops_before_anything_more_runs(remote, comfy):
    from eacps.nodes.runner import Progress

    ran = []
    setup = _setup(remote.Workers((), include_local=True))
    with pytest.raises(remote.Cancelled):
        remote.run_distributed(setup, _one_job_each([1, 2]), _run_here(ran), Progress(4), lambda: True)
    assert ran == []


def test_the_auth_header_comes_from_the_named_variable_and_a_refusal_never_shows_it(remote, monkeypatch):
    from eacps.search.pool import SearchError
    from harness.server import QuietHandler, loopback_http

    remote.check_auth_env("")
    remote.check_auth_env("EACPS_WORKER_TOKEN_2")
    for bad in ("Bearer abc123", "sk-abc", "2TOKEN"):
        with pytest.raises(SearchError, match="NAME of an environment variable"):
            remote.check_auth_env(bad)

    seen = []

    class Refuse(QuietHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            seen.append(self.headers.get("Authorization"))
            self.send_response(401)
            self.end_headers()

    with loopback_http(Refuse) as url:
        monkeypatch.delenv("EACPS_TEST_WORKER_TOKEN", raising=False)
        with pytest.raises(SearchError, match="EACPS_TEST_WORKER_TOKEN .*is not set"):
            remote.WorkerClient(url, "EACPS_TEST_WORKER_TOKEN").check()
        assert seen == []  # nothing was sent without the header
        monkeypatch.setenv("EACPS_TEST_WORKER_TOKEN", "Bearer s3cret-value")
        with pytest.raises(SearchError) as err:
            remote.WorkerClient(url, "EACPS_TEST_WORKER_TOKEN").check()
        assert seen == ["Bearer s3cret-value"]
        assert str(err.value) == (f"worker {url} refused GET /object_info/EACPS_WorkerSample (401): check the header "
                                  "in $EACPS_TEST_WORKER_TOKEN; start it (python main.py --listen ... --port ...) or "
                                  "remove it from the Workers node")
        assert "s3cret" not in str(err.value)
        with pytest.raises(SearchError) as err:
            remote.WorkerClient(url).check()
        assert "(401): check the header in $(no auth_env set); start it" in str(err.value)
        assert seen[-1] is None  # no auth_env: no header


def test_the_worker_node_gets_a_fresh_id_and_the_settings_are_described(remote):
    graph = remote.FeedingGraph(nodes={"eacps_worker_sample": {"class_type": "X", "inputs": {}}},
                                links={"model": ["eacps_worker_sample", 0]})
    prompt, node_id = graph.with_worker_node({"recipes": []})
    assert node_id == "eacps_worker_sample_" and prompt["eacps_worker_sample"]["class_type"] == "X"
    assert prompt[node_id]["inputs"]["job"] == '{"recipes": []}'
    assert remote.Workers(("http://a:1", "http://b:2"), "TOKEN", False, 30.0).describe() == {
        "urls": ["http://a:1", "http://b:2"], "include_local": False, "timeout_s": 30.0, "auth_env": "TOKEN"}
    assert remote.Workers(("http://a:1",)).describe()["auth_env"] is None


def test_feeding_graph_refuses_what_a_worker_could_not_rebuild(remote):
    from eacps.search.pool import SearchError

    search = {"class_type": "EACPS_Search", "inputs": {
        "model": ["ckpt", 0], "positive": ["pos", 0], "negative": ["pos", 0], "latent_image": ["latent", 0]}}
    with pytest.raises(SearchError, match="input 'vae' of the search node is not connected"):
        remote.feeding_graph({"s": search, "ckpt": {"inputs": {}}, "pos": {"inputs": {}}, "latent": {"inputs": {}}},
                             "s")
    search["inputs"]["vae"] = ["ckpt", 2]
    with pytest.raises(SearchError, match="names node latent, which is not in it"):
        remote.feeding_graph({"s": search, "ckpt": {"inputs": {}}, "pos": {"inputs": {}}}, "s")
    assert remote.parse_urls("https://a.example/comfy/\n") == ("https://a.example/comfy",)


# ---- the worker's side, run by the in-process ComfyUI --------------------------------------------
def _worker_prompt(job_text: str, pack_version: str) -> dict:
    from host.graphs import base_nodes

    p = base_nodes()
    p["work"] = {"class_type": "EACPS_WorkerSample", "inputs": {
        "model": ["model", 0], "positive": ["pos", 0], "negative": ["neg", 0], "latent_image": ["latent", 0],
        "vae": ["vae", 0], "job": job_text, "pack_version": pack_version}}
    return p


def test_the_worker_node_samples_each_recipe_as_the_stock_ksampler_does(remote, comfy, captured):
    import json

    import folder_paths
    from safetensors import safe_open
    from safetensors.torch import load_file

    from host.graphs import capture, ksampler_node

    seeds = [5, 9]
    job = {"version": remote.PACK_VERSION,
           "sampling": {"seed": 0, "steps": 3, "cfg": 5.0, "sampler_name": "euler", "scheduler": "normal",
                        "denoise": 1.0, "max_sub_batch": 2},
           "range": {"start": 0, "stop": 3, "steps": 3, "decode": "final"},
           "recipes": [{"mode": "seed", "seed": s} for s in seeds]}
    p = _worker_prompt(remote.job_text(job), remote.PACK_VERSION)
    for s in seeds:  # the oracle: stock KSampler + VAEDecode, one seed per batch of one
        p[f"k{s}"] = ksampler_node(s, steps=3, cfg=5.0)
        p[f"d{s}"] = {"class_type": "VAEDecode", "inputs": {"samples": [f"k{s}", 0], "vae": ["vae", 0]}}
        p[f"cl{s}"] = capture([f"k{s}", 0], f"latent{s}")
        p[f"ci{s}"] = capture([f"d{s}", 0], f"image{s}")
    result = comfy.run(p)
    ref = result.outputs["work"]["eacps_results"][0]
    assert (ref["subfolder"], ref["type"]) == ("eacps_worker", "temp")
    path = f"{folder_paths.get_temp_directory()}/{ref['subfolder']}/{ref['filename']}"
    tensors = load_file(path)
    with safe_open(path, "pt") as f:
        meta = f.metadata()
    for i, s in enumerate(seeds):  # batched, so equal up to float rounding (as tests/host/test_batched_noise.py)
        ref = captured[f"latent{s}"]["samples"]
        assert (tensors["states"][i:i + 1] - ref).abs().max() <= 1e-4 * ref.std(), s
        assert (tensors["images"][i:i + 1] - captured[f"image{s}"]).abs().max() <= 2 / 255, s
    ledger, outcomes = json.loads(meta["ledger"]), json.loads(meta["outcomes"])
    # counted, by hand: 2 candidates x 3 steps, x (cond, uncond) rows; 2 decodes
    assert (ledger["steps"], ledger["passes"], ledger["decodes"]) == (6, 12.0, 2), ledger
    assert [o["nfe"] for o in outcomes] == [ledger["nfe"] / 2] * 2 and ledger["nfe"] in (6.0, 12.0), ledger


@pytest.mark.parametrize("job, version, words", [
    ("{}", "0.0.1", "this worker runs EACPS 0.1.0, the search sent 0.0.1"),
    ("{not json", None, "malformed job from the searching instance"),
    ('{"sampling": {}}', None, "malformed job from the searching instance"),
])
def test_the_worker_node_refuses_another_version_and_a_malformed_job(remote, comfy, job, version, words):
    result = comfy.run(_worker_prompt(job, version or remote.PACK_VERSION), expect_success=False)
    assert not result.success and words in result.error(), result.error()


def test_workers_on_the_local_refine_are_checked_before_it_samples(remote, comfy):
    from harness.server import _free_port
    from host.graphs import two_stage_prompt

    url = f"http://127.0.0.1:{_free_port()}"
    p = two_stage_prompt(k_global=2, m=1, k_local=2, steps=2)
    p["workers"] = {"class_type": "EACPS_Workers",
                    "inputs": {"urls": url, "auth_env": "", "include_local": True, "timeout_s": 30.0}}
    p["local"]["inputs"]["workers"] = ["workers", 0]
    result = comfy.run(p, expect_success=False)
    assert not result.success
    assert "EACPS_LocalSeedRefine" in result.error() and url in result.error() and "did not answer" in result.error()


def test_cancel_drops_the_queued_job_and_interrupts_the_running_one(remote):
    """The bodies ComfyUI's server.py reads: POST /queue {"delete": [ids]}, POST /interrupt {"prompt_id"}."""
    import json

    from harness.server import QuietHandler, loopback_http

    seen = []

    class Record(QuietHandler):
        def do_POST(self):  # noqa: N802 (http.server's name)
            seen.append((self.path, json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.send_response(200)
            self.end_headers()

    with loopback_http(Record) as url:
        remote.WorkerClient(url).cancel("p-1")
    assert seen == [("/queue", {"delete": ["p-1"]}), ("/interrupt", {"prompt_id": "p-1"})]
