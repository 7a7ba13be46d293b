"""The API judge's HTTP behaviour against a scripted loopback server: which answers are retried,
how long it waits between attempts, how many attempts it makes, and that errors never show the key."""

from __future__ import annotations

import base64
import io
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import torch
from PIL import Image

from eacps.verifiers.api_judge import APIJudgeVerifier
from eacps.verifiers.base import VerifierError

KEY = "sk-unit-SECRET-41c0ffee"
KEY_ENV = "EACPS_UNIT_JUDGE_KEY"


class StatusServer:
    """Answers each POST with the next scripted (status, headers[, body]); 200 without a body (or an
    empty script) is a valid judge answer with realism 7.5. The error bodies echo the key, as some APIs do."""

    def __init__(self, script):
        self.script = list(script)
        self.times: list[float] = []
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                outer.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                outer.headers.append(dict(self.headers))
                outer.times.append(time.monotonic())
                status, headers, *reply = outer.script.pop(0) if outer.script else (200, {})
                if reply:  # a scripted 200 body, as it goes on the wire
                    body = reply[0]
                elif status == 200:
                    content = json.dumps({"realism": 7.5})
                    body = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}]})
                else:
                    body = json.dumps({"error": f"status {status} for key {self.headers.get('Authorization')}"})
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body.encode())

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def gaps(self) -> list[float]:
        return [b - a for a, b in zip(self.times, self.times[1:], strict=False)]

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def serve(monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    servers = []

    def start(script):
        servers.append(StatusServer(script))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def judge(srv, max_retries=3, backoff=0.01):
    return APIJudgeVerifier(srv.url, "judge-1", KEY_ENV, "realism", timeout=5.0, max_retries=max_retries,
                            backoff=backoff, concurrency=1)


IMAGE = torch.full((1, 8, 8, 3), 0.5)


@pytest.mark.parametrize("status", [400, 401, 403, 404, 422])
def test_client_errors_are_not_retried_and_never_show_the_key(serve, status):
    srv = serve([(status, {})])
    with pytest.raises(VerifierError, match=f"request refused, HTTP {status}") as info:
        judge(srv).score(IMAGE, "p")
    assert len(srv.times) == 1
    assert KEY not in str(info.value) and "***" in str(info.value)


@pytest.mark.parametrize("status", [429, 500, 502, 503])
def test_rate_limits_and_server_errors_are_retried(serve, status):
    srv = serve([(status, {}), (status, {})])
    result = judge(srv).score(IMAGE, "p")
    assert len(srv.times) == 3 and result.scores["realism"].tolist() == [7.5]


def test_attempts_are_bounded_and_the_last_error_is_shown_without_the_key(serve):
    srv = serve([(503, {})] * 10)
    with pytest.raises(VerifierError, match="gave up after 3 attempts; last: HTTP 503") as info:
        judge(srv, max_retries=2).score(IMAGE, "p")
    assert len(srv.times) == 3 and KEY not in str(info.value)
    srv0 = serve([(500, {})] * 3)
    with pytest.raises(VerifierError, match="gave up after 1 attempts"):
        judge(srv0, max_retries=0).score(IMAGE, "p")
    assert len(srv0.times) == 1


def test_backoff_doubles_each_retry(serve):
    srv = serve([(500, {}), (500, {}), (500, {})])
    judge(srv, max_retries=3, backoff=0.15).score(IMAGE, "p")
    gaps = srv.gaps()
    assert len(gaps) == 3
    # waits of 0.15, 0.3, 0.6 s (lower bounds hold under any load; upper ones leave wide margins)
    for gap, wait in zip(gaps, (0.15, 0.3, 0.6), strict=True):
        assert wait - 0.01 <= gap < wait + 1.0, gaps
    assert gaps[2] > gaps[0] + 0.2, gaps


def test_retry_after_wins_over_the_backoff(serve):
    srv = serve([(429, {"Retry-After": "0.4"}), (503, {"Retry-After": "1"})])
    judge(srv, max_retries=2, backoff=0.01).score(IMAGE, "p")
    gaps = srv.gaps()
    assert 0.39 <= gaps[0] < 1.4 and 0.99 <= gaps[1] < 2.5, gaps
    # a long backoff is cut short by a short Retry-After
    srv = serve([(429, {"Retry-After": "0"})])
    start = time.monotonic()
    judge(srv, max_retries=1, backoff=30.0).score(IMAGE, "p")
    assert time.monotonic() - start < 10.0


def _png_pixels(data_url: str) -> np.ndarray:
    prefix = "data:image/png;base64,"
    assert data_url.startswith(prefix)
    with Image.open(io.BytesIO(base64.b64decode(data_url[len(prefix):]))) as img:
        assert img.mode == "RGB"
        return np.asarray(img)


def test_the_request_is_an_openai_chat_completion_with_the_pictures_as_8_bit_pngs(serve):
    """The body OpenAI's chat-completions API reads: a system message, then one user message whose
    content parts are {"type": "text", "text": ...} and {"type": "image_url", "image_url": {"url": ...}},
    the candidate after the reference; each picture a PNG of its 8-bit values (255 * value, rounded)."""
    levels = torch.tensor([0, 1, 37, 128, 254, 255], dtype=torch.float64)  # black and white included
    candidate = (levels[torch.arange(48) % 6].view(4, 4, 3) / 255).float()
    reference = 1 - candidate
    reference[0, 0] = torch.tensor([1.4, -0.3, 2.0])  # a decode can overshoot: sent clipped, as saved
    srv = serve([])
    v = APIJudgeVerifier(srv.url, "judge-1", KEY_ENV, "realism, consistency", timeout=5.0, max_retries=0,
                         concurrency=1)
    with pytest.raises(VerifierError, match="aspect 'consistency' missing"):  # the server rates realism only
        v.score(candidate[None], "a red apple", reference[None])
    [body] = srv.bodies
    assert body["model"] == "judge-1"
    system, user = body["messages"]
    assert system["role"] == "system" and isinstance(system["content"], str)
    assert user["role"] == "user"
    parts = user["content"]
    assert [p["type"] for p in parts] == ["text", "text", "image_url", "text", "image_url"]
    assert [p["text"] for p in parts if p["type"] == "text"][1:] == ["Reference image:", "Candidate image:"]
    assert parts[0]["text"].startswith(  # the instruction docs/verifiers.md describes: 0-10 per aspect, JSON
        "Rate the candidate image on each aspect below with a number from 0 (very poor) to 10 (excellent). Return a "
        'JSON object with exactly the keys "realism", "consistency", each a number.\n- "realism": ')
    assert srv.headers[0]["Content-Type"] == "application/json" and srv.headers[0]["Accept"] == "application/json"
    for part, image in ((parts[2], reference), (parts[4], candidate)):
        expected = (image.double().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
        assert np.array_equal(_png_pixels(part["image_url"]["url"]), expected)


def test_a_key_variable_that_is_not_set_is_named_without_sending_anything(serve, monkeypatch):
    srv = serve([])
    v = judge(srv)
    monkeypatch.delenv(KEY_ENV)
    with pytest.raises(VerifierError) as info:
        v.score(IMAGE, "p")
    assert str(info.value) == (f"{v.identity}: the environment variable {KEY_ENV} (named as holding the API key) "
                               "is not set in ComfyUI's environment")
    assert srv.bodies == []


def _chat(content, finish_reason="stop") -> str:
    return json.dumps({"choices": [{"message": {"role": "assistant", "content": content},
                                    "finish_reason": finish_reason}]})


@pytest.mark.parametrize("body, says", [
    ("<html>busy</html>", "the endpoint's reply is not JSON (Expecting value: line 1 column 1 (char 0))"),
    (json.dumps({"choices": []}), 'malformed reply, no choices[0].message: {"choices": []}'),
    (_chat(None, "length"), "the reply has no text content (finish_reason 'length')"),
    (json.dumps({"choices": [{"message": {"role": "assistant", "content": None, "refusal": "I cannot rate this"}}]}),
     "the model refused to judge: I cannot rate this"),
    (_chat("realism: 7"), "the answer is not the JSON object asked for: 'realism: 7'"),
    (_chat("[7]"), "the answer is JSON but not an object: '[7]'"),
    (_chat('{"realism": 11}'), "aspect 'realism' missing or not a number in [0, 10] in the answer '{\"realism\": 11}'"),
])
def test_an_answer_that_is_not_a_rating_is_an_error_that_quotes_it_and_is_not_retried(serve, body, says):
    srv = serve([(200, {}, body)])
    v = judge(srv)
    with pytest.raises(VerifierError) as info:
        v.score(IMAGE, "p")
    assert str(info.value) == f"{v.identity}: {says}"
    assert len(srv.bodies) == 1


def test_a_rating_in_a_markdown_code_fence_is_read(serve):
    srv = serve([(200, {}, _chat('```json\n{"realism": 6.5}\n```'))])
    assert judge(srv).score(IMAGE, "p").raw["realism"].tolist() == [6.5]
