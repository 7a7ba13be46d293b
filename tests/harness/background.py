"""Benchmark quick-mode runs started in a subprocess as soon as the test session has collected the
tests that check them, so they run on the second core while the suite goes on (each boots its own
ComfyUI; serially they were ~30 s of the suite). A test then waits for its run's result."""

from __future__ import annotations

import atexit
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from .paths import REPO_ROOT, comfyui_path

# test node id -> the benchmark script it runs with --quick
RUNS = {
    "tests/host/test_bench_quick.py::test_bench_quick_writes_all_parts": "bench.py",
    "tests/host/test_bench_quality_quick.py::test_quality_quick_writes_the_curve_and_the_comparisons": "quality.py",
}
_STARTED: dict[str, tuple[subprocess.Popen, Path]] = {}


@atexit.register
def _stop_unfinished() -> None:  # a session that ends early (-x, Ctrl-C) leaves no benchmark behind
    for proc, _ in _STARTED.values():
        if proc.poll() is None:
            proc.kill()


def start(script: str) -> None:
    """Start ``bench/<script> --quick`` into a fresh folder (once per session)."""
    if script in _STARTED:
        return
    out = Path(tempfile.mkdtemp(prefix=f"eacps_{Path(script).stem}_quick_"))
    env = {**os.environ, "COMFYUI_PATH": str(comfyui_path())}
    proc = subprocess.Popen([sys.executable, str(REPO_ROOT / "bench" / script), "--quick", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    _STARTED[script] = (proc, out)


def finish(script: str, timeout: float = 300) -> tuple[int, str, Path]:
    """(exit code, the last 6000 characters of its output, its results folder); starts it if the
    session did not (a test run on its own). Raises subprocess.TimeoutExpired after ``timeout`` s."""
    start(script)
    proc, out = _STARTED[script]
    try:
        output, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    return proc.returncode, output[-6000:], out
