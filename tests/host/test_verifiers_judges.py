"""VLM judge (tiny real Qwen2-VL folder) and API judge (a loopback OpenAI-compatible server),
loaded through their loader nodes inside a real ComfyUI prompt."""

from __future__ import annotations

import base64
import hashlib
import importlib
import json
import logging
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from verifier_checks import check_verifier, load_verifier, make_images

from eacps.verifiers.base import VerifierError
from harness.inprocess import PromptInvalid
from host.graphs import best_of_n_node, one_node_prompt, search_node

pytestmark = pytest.mark.host

API_KEY = "sk-test-SECRET-7f3a9c1e"
KEY_ENV = "EACPS_TEST_JUDGE_KEY"


# ----------------------------------------------------------------------------------- VLM judge


def test_vlm_judge_prompt_only(comfy, captured, judge_files):
    v = load_verifier(comfy, captured, "EACPS_LoadVLMJudgeVerifier",
                      {"model_folder": "tiny_qwen2vl", "aspects": "prompt_adherence, realism", "max_batch": 2})
    assert v.aspects == ("prompt_adherence", "realism") and not v.requires_reference
    result = check_verifier(v, make_images(5), "a red apple")
    for a in v.aspects:
        assert torch.allclose(result.scores[a], result.raw[a] * 10 / 9)
        assert result.raw[a].std() > 0  # the expected digit depends on the image


def test_vlm_judge_sees_reference_and_candidate(comfy, captured, judge_files):
    v = load_verifier(comfy, captured, "EACPS_LoadVLMJudgeVerifier",
                      {"model_folder": "tiny_qwen2vl", "aspects": "consistency, identity", "max_batch": 4})
    assert v.requires_reference
    images = make_images(5)
    ref_a, ref_b = make_images(1, seed=7, size=(48, 48)), make_images(1, seed=8, size=(48, 48))
    result = check_verifier(v, images, "make it red", ref_a)
    other = v.score(images, "make it red", ref_b)
    assert not torch.allclose(result.raw["identity"], other.raw["identity"])  # the reference is seen
    with pytest.raises(VerifierError, match="reference"):
        v.score(images, "make it red")


def test_cancel_inside_a_vlm_forward_pass_stops_before_the_next_layer(comfy, captured, judge_files):
    mm = importlib.import_module("comfy.model_management")
    v = load_verifier(comfy, captured, "EACPS_LoadVLMJudgeVerifier",
                      {"model_folder": "tiny_qwen2vl", "aspects": "realism", "max_batch": 4})
    model = v.model.managed.module
    blocks = [child for m in model.modules() if isinstance(m, torch.nn.ModuleList) for child in m]
    assert len(blocks) >= 2  # the vision block runs first, then the text layer
    ran = []

    def block_done(i):  # Cancel is pressed while the first block to run computes
        ran.append(i)
        if len(ran) == 1:
            mm.interrupt_current_processing(True)

    hooks = [b.register_forward_hook(lambda *_, i=i: block_done(i)) for i, b in enumerate(blocks)]
    try:
        with pytest.raises(mm.InterruptProcessingException):
            v.score(make_images(2), "a red apple")
    finally:
        for h in hooks:
            h.remove()
        mm.interrupt_current_processing(False)
    assert len(ran) == 1, f"blocks {ran} ran; Cancel must stop the forward pass at the next block"


def test_vlm_judge_unknown_aspect_is_refused(comfy, judge_files):
    with pytest.raises(PromptInvalid, match="unknown judge aspect 'beauty'"):
        comfy.run({
            "load": {"class_type": "EACPS_LoadVLMJudgeVerifier",
                     "inputs": {"model_folder": "tiny_qwen2vl", "aspects": "beauty", "max_batch": 4}},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}},
        })


def test_vlm_judge_missing_folder_error(comfy, judge_files):
    with pytest.raises(PromptInvalid) as info:
        comfy.run({
            "load": {"class_type": "EACPS_LoadVLMJudgeVerifier",
                     "inputs": {"model_folder": "Qwen2.5-VL-3B-Instruct", "aspects": "realism", "max_batch": 4}},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}},
        })
    text = str(info.value.details)
    assert "Qwen2.5-VL-3B-Instruct" in text and "models/verifiers" in text and "Qwen/Qwen2.5-VL" in text


# ----------------------------------------------------------------------------------- API judge


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # The timeout test's client hangs up before the slow answer is written: expected there.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)


class JudgeServer:
    """A loopback chat-completions server. Each request pops the next scripted behaviour
    ("ok", "malformed", "refusal", "429", "500", "slow", "hang"); when the script is empty it answers "ok":
    scores derived from a hash of the candidate image, so answers are deterministic per image."""

    def __init__(self):
        self.script: list[str] = []
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        self.release = threading.Event()  # ends "hang" answers (set on stop)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with outer.lock:
                    outer.requests.append({"body": body, "auth": self.headers.get("Authorization"),
                                           "path": self.path})
                    action = outer.script.pop(0) if outer.script else "ok"
                if action == "slow":
                    time.sleep(1.5)
                    action = "ok"
                if action == "hang":  # a judge that takes minutes
                    outer.release.wait(120)
                    action = "ok"
                if action in ("429", "500"):
                    self.send_response(int(action))
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"error": "busy"}')
                    return
                if action == "malformed":
                    message = {"role": "assistant", "content": "I think it is about a seven."}
                elif action == "refusal":
                    message = {"role": "assistant", "content": None, "refusal": "I can't help with that."}
                else:
                    message = {"role": "assistant", "content": json.dumps(outer.scores(body))}
                payload = json.dumps({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload.encode())

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    @staticmethod
    def scores(body: dict) -> dict:
        parts = body["messages"][1]["content"]
        urls = [p["image_url"]["url"] for p in parts if p["type"] == "image_url"]
        png = base64.b64decode(urls[-1].split(",", 1)[1])
        digest = hashlib.sha256(png).digest()
        text = parts[0]["text"]
        aspects = [a for a in ("prompt_adherence", "realism", "consistency", "identity") if f'"{a}"' in text]
        return {a: round(digest[i] / 25.5, 2) for i, a in enumerate(aspects)}

    def stop(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def judge_server(monkeypatch):
    monkeypatch.setenv(KEY_ENV, API_KEY)
    srv = JudgeServer()
    yield srv
    srv.stop()


def api_inputs(srv, **over):
    inputs = {"base_url": srv.url, "model": "judge-1", "api_key_env": KEY_ENV,
              "aspects": "prompt_adherence, realism", "timeout_s": 5.0, "max_retries": 2, "backoff_s": 0.01,
              "concurrency": 3}
    inputs.update(over)
    return inputs


def test_api_judge_scores_and_keeps_the_key_secret(comfy, captured, judge_server, caplog):
    caplog.set_level(logging.DEBUG)
    prompt = {
        "load": {"class_type": "EACPS_LoadAPIJudgeVerifier", "inputs": api_inputs(judge_server)},
        "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "api"}},
    }
    run = comfy.run(prompt)
    v = captured["api"]
    result = check_verifier(v, make_images(5), "a red apple", expect_patchers=False)
    assert set(result.scores) == {"prompt_adherence", "realism"}
    req = judge_server.requests[0]
    assert req["path"] == "/v1/chat/completions" and req["auth"] == f"Bearer {API_KEY}"
    assert req["body"]["response_format"] == {"type": "json_object"} and req["body"]["temperature"] == 0
    assert req["body"]["messages"][1]["content"][-1]["image_url"]["url"].startswith("data:image/png;base64,")
    # the key is in none of the outputs: workflow, prompt outputs, identity, results, logs, pickled verifier
    blobs = [json.dumps(prompt), json.dumps(run.outputs, default=str), str(run.events), v.identity, repr(result),
             str(result.scores), str(vars(v)), caplog.text]
    assert not any(API_KEY in b for b in blobs)


def test_api_judge_with_reference_sends_both_images(comfy, captured, judge_server):
    v = load_verifier(comfy, captured, "EACPS_LoadAPIJudgeVerifier",
                      api_inputs(judge_server, aspects="consistency, identity"))
    assert v.requires_reference
    result = v.score(make_images(2), "make it red", make_images(1, seed=3))
    assert set(result.scores) == {"consistency", "identity"}
    parts = judge_server.requests[-1]["body"]["messages"][1]["content"]
    assert sum(p["type"] == "image_url" for p in parts) == 2


def test_api_judge_retries_429_then_succeeds(comfy, captured, judge_server):
    v = load_verifier(comfy, captured, "EACPS_LoadAPIJudgeVerifier", api_inputs(judge_server, concurrency=1))
    expected = v.score(make_images(1), "p")
    judge_server.script = ["429", "500"]
    n = len(judge_server.requests)
    again = v.score(make_images(1), "p")
    assert len(judge_server.requests) == n + 3
    assert torch.equal(expected.scores["realism"], again.scores["realism"])


@pytest.mark.parametrize("action,message", [
    ("malformed", "not the JSON object asked for"),
    ("refusal", "refused to judge"),
])
def test_api_judge_bad_answers_are_errors(comfy, captured, judge_server, action, message):
    v = load_verifier(comfy, captured, "EACPS_LoadAPIJudgeVerifier", api_inputs(judge_server, concurrency=1))
    judge_server.script = [action]
    with pytest.raises(VerifierError, match=message) as info:
        v.score(make_images(1), "p")
    assert API_KEY not in str(info.value)


def test_api_judge_timeout_and_persistent_errors(comfy, captured, judge_server):
    v = load_verifier(comfy, captured, "EACPS_LoadAPIJudgeVerifier",
                      api_inputs(judge_server, timeout_s=0.3, max_retries=1, concurrency=1))
    judge_server.script = ["slow", "slow"]
    with pytest.raises(VerifierError, match=r"gave up after 2 attempts; last: no answer within 0.3 s"):
        v.score(make_images(1), "p")
    judge_server.script = ["500", "500"]
    with pytest.raises(VerifierError, match="HTTP 500"):
        v.score(make_images(1), "p")


def test_api_judge_missing_key_variable_is_explained(comfy, judge_server, monkeypatch):
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(PromptInvalid, match=f"environment variable {KEY_ENV} is not set"):
        comfy.run({
            "load": {"class_type": "EACPS_LoadAPIJudgeVerifier", "inputs": api_inputs(judge_server)},
            "cap": {"class_type": "EACPSTest_Capture", "inputs": {"value": ["load", 0], "key": "x"}},
        })


# ---------------------------------------------------------------------- Cancel while a judge waits


def cancel_when(server, n_requests: int, delay: float = 0.0) -> dict:
    """Press Cancel (as POST /interrupt does) once the judge server has seen ``n_requests`` requests
    plus ``delay`` seconds; returns what it saw then. Set ``seen["done"]`` when the prompt is over,
    so a Cancel that never came cannot hit a later test."""
    mm = importlib.import_module("comfy.model_management")
    seen: dict = {"done": threading.Event()}

    def run():
        while len(server.requests) < n_requests:
            if seen["done"].wait(0.01):
                return
        time.sleep(delay)
        with server.lock:
            seen["requests"] = len(server.requests)
        seen["t"] = time.monotonic()
        mm.interrupt_current_processing(True)

    threading.Thread(target=run, daemon=True).start()
    return seen


@pytest.mark.parametrize("script,delay", [
    (["hang"] * 10, 0.3),  # waiting on an answer (the loader's 60 s timeout)
    (["500"] * 10, 0.5),  # inside a 30 s backoff sleep between retries
])
def test_cancel_while_the_api_judge_waits_ends_the_prompt_as_interrupted(comfy, judge_server, script, delay):
    judge_server.script = list(script)
    p = one_node_prompt(best_of_n_node(n=3, seed=4, weights="realism=1"))
    p["verifier"] = {"class_type": "EACPS_LoadAPIJudgeVerifier",
                     "inputs": api_inputs(judge_server, timeout_s=60.0, max_retries=4, backoff_s=30.0,
                                          concurrency=1)}
    seen = cancel_when(judge_server, 1, delay)
    try:
        result = comfy.run(p, expect_success=False)
    finally:
        seen["done"].set()
    stopped_after = time.monotonic() - seen["t"]
    time.sleep(0.5)  # a request sent after Cancel would arrive by now
    kinds = [kind for kind, _ in result.status_messages]
    assert "execution_interrupted" in kinds and "execution_error" not in kinds, result.status_messages
    assert stopped_after < 1.0, f"Cancel took {stopped_after:.2f} s"
    assert len(judge_server.requests) == seen["requests"] == 1, "a request was sent after Cancel"
    partial = sorted((comfy.base_dir / "output" / "EACPS_partial").glob("*.json"), key=lambda f: f.stat().st_mtime)
    report = json.loads(partial[-1].read_text())  # nothing sampled is lost
    assert report["stopped"] == "cancelled" and len(report["candidates"]) == 3


def test_an_error_after_sampling_keeps_the_sampled_candidates(comfy, judge_server):
    judge_server.script = ["refusal"]
    p = one_node_prompt(search_node(seed=4, k_global=3, m=1, k_local=1, weights="realism=1"))
    p["verifier"] = {"class_type": "EACPS_LoadAPIJudgeVerifier", "inputs": api_inputs(judge_server, concurrency=1)}
    result = comfy.run(p, expect_success=False)
    message = result.error()
    assert "refused to judge" in message and "The 3 candidates sampled before this error are kept" in message
    path = Path(re.search(r"report (\S+\.json)", message).group(1))
    assert path.is_relative_to(comfy.base_dir / "output")
    report = json.loads(path.read_text())
    assert [c["seed"] for c in report["candidates"]][0] == 4 and len(report["candidates"]) == 3
    assert report["winner"] is None and "refused to judge" in report["stopped"]
    assert path.with_suffix(".png").is_file() and API_KEY not in path.read_text()
