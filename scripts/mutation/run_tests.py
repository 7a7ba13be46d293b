"""mutmut's test command: ask the fork server (scripts/mutation/forkserver.py) to run pytest with
these arguments, and exit as mutmut 2 expects: 1 when a test failed or the mutant broke the run
(failed tests, an import or collection error, a crash), 0 when every test passed.
Exit 2 when the server cannot be reached: mutmut counts that as a survivor, so a broken set-up
shows up as 0% killed instead of passing silently."""

from __future__ import annotations

import json
import os
import socket
import sys


def main() -> int:
    path = os.environ["EACPS_MUTATION_SOCKET"]
    # HTTP-server tests start a ComfyUI process of their own (over a minute on busy cores): left out,
    # but for the few marked mutation_server (the only test of a behaviour that needs a real server)
    args = ["-x", "-q", "-p", "no:cacheprovider", "-m", "not server or mutation_server", *sys.argv[1:]]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn:
            conn.connect(path)
            conn.sendall((json.dumps(args) + "\n").encode())
            reply = conn.makefile().readline().strip()
    except OSError as e:
        print(f"mutation fork server not reachable at {path}: {e}", file=sys.stderr)
        return 2
    code = int(reply)
    # pytest: 0 all passed, 1 tests failed, 2 interrupted (e.g. collection error), 3 internal error,
    # 4 usage error, 5 no tests collected; negative: killed by a signal (SIGALRM: the time limit)
    if code == 0:
        return 0
    if code in (4, 5):
        print(f"pytest exit {code} (usage error / no tests): the test selection is wrong", file=sys.stderr)
        return 2
    if code == -14:  # SIGALRM: the fork server's time limit, not a failed test; counted as a survivor
        print("the test run hit the fork server's time limit", file=sys.stderr)
        return 2
    return 1


if __name__ == "__main__":
    sys.exit(main())
