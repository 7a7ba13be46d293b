"""One real ComfyUI server with the real frontend (comfyui-frontend-package, no --front-end-root) and
one headless Chromium page per test module, driven by Playwright through Debian's /usr/bin/chromium.

Screenshots go to test_artifacts/browser/ (or $EACPS_ARTIFACTS); the session prints the folder.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from harness.paths import REPO_ROOT, make_base_dir

CHROMIUM = os.environ.get("EACPS_CHROMIUM", "/usr/bin/chromium")
# No GPU, no background traffic (registry, updates, sync), a fresh profile each session.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1600, "height": 1000}


def _missing_browser(reason: str):
    message = f"{reason}; run scripts/setup_browser.sh as root (apt-get install -y chromium fonts-dejavu-core)"
    if os.environ.get("CI"):
        pytest.fail(f"browser tests must run in CI: {message}")
    pytest.skip(message)


@pytest.fixture(scope="session")
def artifacts() -> Path:
    folder = Path(os.environ.get("EACPS_ARTIFACTS") or REPO_ROOT / "test_artifacts" / "browser")
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    print(f"\nbrowser screenshots: {folder}")
    return folder


class Editor:
    """The page, plus what the page's websocket received (JSON messages and binary preview sizes)."""

    def __init__(self, server, page, artifacts: Path):
        self.server, self.page, self.artifacts = server, page, artifacts
        self.events: list[tuple] = []  # ("json", type, data) or ("binary", n_bytes)
        self.console: list[tuple[str, str]] = []
        self.responses: list[tuple[str, int]] = []

    def on_frame(self, payload) -> None:
        if isinstance(payload, str):
            msg = json.loads(payload)
            self.events.append(("json", msg.get("type"), msg.get("data")))
        else:
            self.events.append(("binary", len(payload)))

    def screenshot(self, name: str) -> Path:
        path = self.artifacts / f"{name}.png"
        self.page.screenshot(path=str(path))
        return path


# Module scope: Playwright's sync API runs an event loop in this thread while it is open, and the
# in-process ComfyUI tests that follow call asyncio.run(), which refuses to run inside one.
@pytest.fixture(scope="module")
def editor(tmp_path_factory, artifacts):
    if not Path(CHROMIUM).is_file():
        _missing_browser(f"no Chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing_browser("Playwright is not installed (requirements-dev.txt pins it)")
    from harness.server import ComfyServer
    from harness.tiny_swaps import write_input_image

    t0 = time.monotonic()
    base = make_base_dir(tmp_path_factory.mktemp("browser_base"))
    write_input_image(base / "input")
    server = ComfyServer(base, base / "server.log", front_end=True, extra_args=("--preview-method", "latent2rgb"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            context = browser.new_context(viewport=VIEWPORT)
            page = context.new_page()
            ed = Editor(server, page, artifacts)
            page.on("websocket", lambda ws: ws.on("framereceived", ed.on_frame))
            page.on("console", lambda m: ed.console.append((m.type, m.text)))
            page.on("response", lambda r: ed.responses.append((r.url, r.status)))
            page.on("pageerror", lambda e: ed.console.append(("pageerror", str(e))))
            page.goto(server.url)
            page.wait_for_function("window.app && window.app.graph && window.app.canvas", timeout=90_000)
            print(f"server + editor ready in {time.monotonic() - t0:.1f}s")
            yield ed
            browser.close()
    finally:
        server.stop()
