"""A real ComfyUI HTTP server (main.py) on a free loopback port, for API-level tests."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from .paths import comfyui_path


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps http.server's line per request out of the test output."""

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def loopback_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[str]:
    """Serve ``handler`` (a stand-in peer: a refusing worker, a recorder) on a free 127.0.0.1 port in
    a thread; yields its base URL, shuts it down after the block."""
    srv = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()
        srv.server_close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, base_dir: Path, log_path: Path, python: str = sys.executable, front_end: bool = False,
                 extra_args: tuple[str, ...] = ()):
        """``front_end``: serve the real frontend (the comfyui-frontend-package ComfyUI finds) instead of
        an empty web root; ``extra_args`` go to main.py (e.g. ``--preview-method latent2rgb``)."""
        self.base_dir = base_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        web_root: list[str] = []
        if not front_end:
            empty = base_dir / "empty_front_end"
            empty.mkdir(exist_ok=True)
            web_root = ["--front-end-root", str(empty)]
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115 (lives as long as the server)
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [
                python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
                "--disable-auto-launch", "--disable-api-nodes", "--base-directory", str(base_dir),
                *web_root, *extra_args,
            ],
            cwd=comfyui_path(), stdout=self._log, stderr=subprocess.STDOUT, env=env,
        )
        self._wait_ready(timeout=300)  # generous: a loaded 2-core machine starts it slowly

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"ComfyUI server exited ({self.proc.returncode}):\n{self.log()}")
            try:
                self.get("/system_stats")
                return
            except (urllib.error.URLError, ConnectionError, OSError):
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ComfyUI server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-8000:]

    def get(self, path: str):
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.loads(r.read())

    def post(self, path: str, payload: dict | None = None):
        data = json.dumps(payload or {}).encode()
        req = urllib.request.Request(self.url + path, data=data, headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                body = r.read()
                return json.loads(body) if body else None
        except urllib.error.HTTPError as e:
            raise AssertionError(f"POST {path} -> {e.code}: {e.read().decode(errors='replace')}") from e

    def queue(self, prompt: dict) -> str:
        return self.post("/prompt", {"prompt": prompt, "client_id": str(uuid.uuid4())})["prompt_id"]

    def wait(self, prompt_id: str, timeout: float = 120) -> dict:
        """The prompt's /history entry once it has finished (completed, failed or interrupted)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            history = self.get(f"/history/{prompt_id}")
            if prompt_id in history and history[prompt_id].get("status", {}).get("completed") is not None:
                entry = history[prompt_id]
                if entry["status"].get("status_str") in ("success", "error"):
                    return entry
            time.sleep(0.1)
        raise AssertionError(f"prompt {prompt_id} did not finish in {timeout}s; server log:\n{self.log()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
