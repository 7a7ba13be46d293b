"""Any OpenAI-compatible chat-completions endpoint as judge.

One request per candidate image (requests run concurrently), asking for a JSON object with one
number per rubric aspect, 0 (very poor) .. 10 (excellent); the candidate and, for
consistency/identity, the reference are sent as base64 PNG data URLs. raw = the number returned;
score = raw (it must already lie in [0, 10]; anything else is an error, never clamped or defaulted).

Retries HTTP 429 and 5xx (and timeouts) with exponential backoff (honouring Retry-After), gives
up with a clear error; a malformed, incomplete or refused answer is an error too. Cancel is seen
within ``management.POLL_S``: the caller stops waiting for answers still in flight, no new request
or retry starts after it, backoff sleeps end early, and the prompt ends as interrupted. The API key is
read from the environment variable the user names, at request time; it is never stored on the
verifier, logged, or put into identities, errors or results.
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
import socket
import threading
import urllib.error
import urllib.request
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import torch

from . import management
from .base import Verifier, VerifierError, VerifierResult
from .rubric import NEEDS_REFERENCE, parse_aspects, question

SYSTEM = ("You are a strict, consistent judge of generated images. Reply with a single JSON object and "
          "nothing else.")


def png_data_url(image: torch.Tensor) -> str:
    """IMAGE [H, W, 3] in 0..1 -> data:image/png;base64,..."""
    from PIL import Image

    arr = (image[..., :3].detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    buf = io.BytesIO()
    Image.fromarray(arr, "RGB").save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


class _Stopped(Exception):
    """A request thread stops because the search was cancelled or another request failed."""


class APIJudgeVerifier(Verifier):
    kind = "api_judge"

    def __init__(self, base_url: str, model: str, key_env: str, aspects: str, timeout: float = 60.0,
                 max_retries: int = 4, backoff: float = 1.0, concurrency: int = 4):
        base_url = base_url.strip().rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise VerifierError(f"API judge: base URL must start with http:// or https://, got '{base_url}'")
        if not model.strip():
            raise VerifierError("API judge: no model name given")
        self.url = base_url if base_url.endswith("/chat/completions") else base_url + "/chat/completions"
        self.model = model.strip()
        self.key_env = key_env.strip()
        self.aspects = parse_aspects(aspects)
        self.uses_reference = bool(NEEDS_REFERENCE & set(self.aspects))
        self.requires_reference = self.uses_reference
        self.timeout = float(timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = max(0.0, float(backoff))
        self.concurrency = max(1, int(concurrency))
        self._identity = f"api_judge:{self.url}:{self.model}:{','.join(self.aspects)}"

    def _key(self) -> str | None:
        if not self.key_env:
            return None
        key = os.environ.get(self.key_env)
        if not key:
            raise VerifierError(f"{self.identity}: the environment variable {self.key_env} (named as holding "
                                "the API key) is not set in ComfyUI's environment")
        return key

    def _messages(self, prompt: str, candidate: str, reference: str | None) -> list[dict]:
        keys = ", ".join(f'"{a}"' for a in self.aspects)
        lines = [f'- "{a}": {question(a, prompt)}' for a in self.aspects]
        text = ("Rate the candidate image on each aspect below with a number from 0 (very poor) to 10 "
                f"(excellent). Return a JSON object with exactly the keys {keys}, each a number.\n" + "\n".join(lines))
        content: list[dict] = [{"type": "text", "text": text}]
        if reference is not None:
            content += [{"type": "text", "text": "Reference image:"},
                        {"type": "image_url", "image_url": {"url": reference}}]
        content += [{"type": "text", "text": "Candidate image:"}, {"type": "image_url", "image_url": {"url": candidate}}]
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": content}]

    def _post(self, body: bytes, key: str | None, stop: threading.Event) -> dict:
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        last = ""
        for attempt in range(self.max_retries + 1):
            if stop.is_set():
                raise _Stopped
            pause = self.backoff * (2**attempt)
            try:
                req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310 (user's URL)
                    payload = resp.read()
                try:
                    return json.loads(payload)
                except json.JSONDecodeError as e:
                    raise VerifierError(f"{self.identity}: the endpoint's reply is not JSON ({e})") from e
            except urllib.error.HTTPError as e:
                detail = e.read(300).decode("utf-8", "replace")
                last = f"HTTP {e.code}: {detail}"
                if e.code != 429 and e.code < 500:
                    raise VerifierError(f"{self.identity}: request refused, {self._redact(last, key)}") from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.strip().replace(".", "", 1).isdigit():
                    pause = min(float(retry_after), 60.0)
            except TimeoutError:
                last = f"no answer within {self.timeout:g} s"
            except urllib.error.URLError as e:
                if isinstance(e.reason, (TimeoutError, socket.timeout)):
                    last = f"no answer within {self.timeout:g} s"
                else:
                    raise VerifierError(f"{self.identity}: cannot reach the endpoint: {e.reason}") from None
            if attempt < self.max_retries and stop.wait(pause):
                raise _Stopped
        raise VerifierError(f"{self.identity}: gave up after {self.max_retries + 1} attempts; last: "
                            f"{self._redact(last, key)}")

    @staticmethod
    def _redact(text: str, key: str | None) -> str:
        return text.replace(key, "***") if key else text

    def _parse(self, reply: dict) -> list[float]:
        try:
            message = reply["choices"][0]["message"]
        except (KeyError, IndexError, TypeError):
            raise VerifierError(f"{self.identity}: malformed reply, no choices[0].message: "
                                f"{json.dumps(reply)[:300]}") from None
        if message.get("refusal"):
            raise VerifierError(f"{self.identity}: the model refused to judge: {str(message['refusal'])[:300]}")
        content = message.get("content")
        if not isinstance(content, str):
            raise VerifierError(f"{self.identity}: the reply has no text content (finish_reason "
                                f"{reply['choices'][0].get('finish_reason')!r})")
        text = content.strip()
        if text.startswith("```"):
            text = text.strip("`").removeprefix("json").strip()
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise VerifierError(f"{self.identity}: the answer is not the JSON object asked for: {content[:300]!r}") from None
        if not isinstance(data, dict):
            raise VerifierError(f"{self.identity}: the answer is JSON but not an object: {content[:300]!r}")
        values = []
        for aspect in self.aspects:
            v = data.get(aspect)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not 0 <= v <= 10:
                raise VerifierError(f"{self.identity}: aspect '{aspect}' missing or not a number in [0, 10] in "
                                    f"the answer {content[:300]!r}")
            values.append(float(v))
        return values

    def _one(self, prompt: str, image: torch.Tensor, reference: str | None, key: str | None,
             stop: threading.Event) -> list[float]:
        body = json.dumps({
            "model": self.model, "temperature": 0, "response_format": {"type": "json_object"},
            "messages": self._messages(prompt, png_data_url(image), reference),
        }).encode("utf-8")
        return self._parse(self._post(body, key, stop))

    def _score(self, images, prompt, reference) -> VerifierResult:
        management.throw_if_interrupted()
        key = self._key()
        ref = png_data_url(reference[0]) if reference is not None else None
        stop = threading.Event()  # set on Cancel or on the first error: no new request after it
        pool = ThreadPoolExecutor(max_workers=min(self.concurrency, images.shape[0]))
        futures = [pool.submit(self._one, prompt, img, ref, key, stop) for img in images]
        try:
            while True:
                _, pending = wait(futures, timeout=management.POLL_S, return_when=FIRST_EXCEPTION)
                failed = [f for f in futures if f.done() and not f.cancelled() and f.exception() is not None]
                if failed:
                    raise failed[0].exception()
                if not pending:
                    break
                management.throw_if_interrupted()
        finally:
            stop.set()
            # requests still in flight end on their own (their answers are dropped); nobody waits for them
            pool.shutdown(wait=False, cancel_futures=True)
        rows = [f.result() for f in futures]
        values = torch.tensor(rows, dtype=torch.float64).reshape(images.shape[0], len(self.aspects))
        raw = {a: values[:, i] for i, a in enumerate(self.aspects)}
        return VerifierResult(scores={a: v.clone() for a, v in raw.items()}, raw=raw)
