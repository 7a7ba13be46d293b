"""Fork server for mutation runs: imports torch, pytest and (with --host) ComfyUI's own modules
once, then runs each pytest command it is sent in a fresh fork.

A mutant's test run then costs its tests, not a Python start, a torch import and a ComfyUI boot
(about 25 s per run on two busy cores). The pack itself is never imported here: each fork imports
it from disk, so it sees the file mutmut has just mutated. With --host the forks share one ComfyUI
base directory (tests/conftest.py reads EACPS_TEST_COMFY_BASE), because ComfyUI's folder_paths
fixes its paths when it is imported.

Protocol (unix socket): the client sends a JSON list of pytest arguments and gets back the exit
status of that run as text ("-14" when the run was killed by SIGALRM after --limit seconds).
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import os
import select
import signal
import socket
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def preload(host: bool) -> None:
    import numpy  # noqa: F401
    import PIL.Image  # noqa: F401
    import pytest  # noqa: F401
    import torch  # noqa: F401

    if not host:
        return
    sys.path.insert(0, str(REPO / "tests"))
    from harness.paths import comfyui_path, make_base_dir

    base = make_base_dir(Path(os.environ["EACPS_TEST_COMFY_BASE"]))
    sys.path.insert(0, str(comfyui_path()))
    import comfy.cli_args

    # as tests/harness/inprocess.py does before importing the rest of ComfyUI
    comfy.cli_args.args.cpu = True
    comfy.cli_args.args.base_directory = str(base)
    comfy.cli_args.args.disable_api_nodes = True
    importlib.import_module("utils.extra_config")
    importlib.import_module("utils.install_util")
    for name in ("execution", "folder_paths", "nodes", "latent_preview", "comfy.sample", "comfy.samplers",
                 "open_clip", "transformers"):
        importlib.import_module(name)


def run_child(args: list[str], limit: int, log: str) -> None:
    signal.alarm(limit)
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    import pytest

    code = 3
    try:
        code = int(pytest.main(args))
    finally:
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def wait_or_cancel(pid: int, conn: socket.socket) -> int | None:
    """The child's wait status; or, when the client hangs up first (mutmut's own timeout killed it),
    None after killing the child, so the next mutant does not queue behind a run nobody awaits."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        readable, _, _ = select.select([conn], [], [], 0.5)
        if readable and not conn.recv(1):
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            return None


def serve(path: str, limit: int, log: str) -> None:
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    srv.listen(1)
    print(f"fork server ready on {path}", flush=True)
    while True:
        conn, _ = srv.accept()
        with conn:
            request = json.loads(conn.makefile().readline())
            if request == "stop":
                break
            pid = os.fork()
            if pid == 0:
                srv.close()
                conn.close()
                run_child(request, limit, log)
            status = wait_or_cancel(pid, conn)
            if status is not None:
                try:
                    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
    srv.close()
    os.unlink(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", required=True)
    parser.add_argument("--host", action="store_true", help="also import ComfyUI (for tests/host)")
    parser.add_argument("--limit", type=int, default=3600, help="seconds before a test run is killed")
    parser.add_argument("--log", default=os.devnull, help="where the test runs' output goes")
    opts = parser.parse_args()
    os.chdir(REPO)
    preload(opts.host)
    serve(opts.socket, opts.limit, opts.log)


if __name__ == "__main__":
    main()
