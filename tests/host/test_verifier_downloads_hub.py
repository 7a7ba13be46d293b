"""The download path itself, through the real huggingface_hub client against a small Hub-protocol
server on a loopback port (the tests never reach the internet): files land where the loader looks,
a dropped connection is resumed with a range request, HF folders never fetch pickled weights, a
re-run fetches only what is missing, and a broken file is deleted with a clear message.

The server answers the four requests huggingface_hub 2.x makes: repo info, tree listing, and
HEAD/GET on /<repo>/resolve/<revision>/<file> (ETag, size and commit headers; Range requests).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import torch
from safetensors.torch import save

from eacps.verifiers import downloads
from eacps.verifiers.protocol import VerifierError

pytestmark = pytest.mark.host



def commit(repo: str) -> str:
    """Each repository's head commit (distinct per repository, as on the Hub)."""
    return hashlib.sha1(repo.encode()).hexdigest()


class Hub:
    """Repositories (repo -> {path: bytes}) served over HTTP; records every request."""

    def __init__(self, repos: dict[str, dict[str, bytes]]):
        self.repos = repos
        self.requests: list[tuple[str, str, str | None]] = []  # (method, path, Range header)
        self.cut_once: set[str] = set()  # files whose first GET is cut off half way
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_HEAD(self):
                hub.requests.append(("HEAD", self.path, self.headers.get("Range")))
                self._file(body=False)

            def do_GET(self):
                hub.requests.append(("GET", self.path, self.headers.get("Range")))
                api = re.match(r"^/api/models/([^/]+/[^/]+)/(revision|tree)/([^/?]+)", self.path)
                if api:
                    return self._api(api.group(1), api.group(2))
                self._file(body=True)

            def _send(self, code, data: bytes, headers: dict):
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.end_headers()
                return data

            def _api(self, repo, what):
                files = hub.repos.get(repo)
                if files is None:
                    self._send(404, b"", {"Content-Length": "0", "X-Error-Code": "RepoNotFound"})
                    return
                if what == "revision":
                    body = {"id": repo, "modelId": repo, "sha": commit(repo), "siblings": [{"rfilename": f} for f in files]}
                else:
                    body = [{"type": "file", "path": f, "size": len(b), "oid": hashlib.sha1(b).hexdigest()}
                            for f, b in files.items()]
                data = json.dumps(body).encode()
                self.wfile.write(self._send(200, data, {"Content-Type": "application/json",
                                                         "Content-Length": str(len(data))}))

            def _file(self, body: bool):
                m = re.match(r"^/([^/]+/[^/]+)/resolve/[^/]+/(.+)$", self.path)
                data = hub.repos.get(m.group(1), {}).get(m.group(2)) if m else None
                if data is None:
                    self._send(404, b"", {"Content-Length": "0", "X-Error-Code": "EntryNotFound"})
                    return
                headers = {"X-Repo-Commit": commit(m.group(1)), "ETag": f'"{hashlib.sha256(data).hexdigest()}"',
                           "Accept-Ranges": "bytes"}
                start = 0
                rng = self.headers.get("Range")
                if rng and body:
                    start = int(re.match(r"bytes=(\d+)-", rng).group(1))
                    headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
                headers["Content-Length"] = str(len(data) - start)
                self._send(206 if start else 200, b"", headers)
                if not body:
                    return
                part = data[start:]
                if m.group(2) in hub.cut_once and not start:
                    hub.cut_once.discard(m.group(2))
                    self.wfile.write(part[: len(part) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(2)  # the connection drops half way through
                    return
                self.wfile.write(part)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def gets(self, name: str) -> list[str | None]:
        return [r for m, p, r in self.requests if m == "GET" and p.endswith("/" + name)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def _safetensors(seed: int, n: int = 4096) -> bytes:
    return save({"w": torch.randn(n, generator=torch.Generator().manual_seed(seed))})


@pytest.fixture
def hub(comfy, verifier_files, monkeypatch):
    """A loopback hub, and huggingface_hub pointed at it with offline mode off for this test only."""
    from huggingface_hub import constants

    server = Hub({})
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    # Small read chunks, so a cut-off small file has whole chunks on disk to resume from (10 MB by default).
    monkeypatch.setattr(constants, "DOWNLOAD_CHUNK_SIZE", 64 * 1024)
    monkeypatch.setattr(constants, "ENDPOINT", server.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", server.url + "/{repo_id}/resolve/{revision}/{filename}")
    yield server
    server.close()
    for name in ("tiny-clip", "tiny-model", "broken", "pickled", "gone"):
        shutil.rmtree(verifier_files / name, ignore_errors=True)


def test_single_file_lands_where_the_loader_looks_and_a_dropped_connection_resumes(hub, verifier_files):
    data = _safetensors(1, 200_000)
    hub.repos["someone/tiny-clip"] = {"open_clip_model.safetensors": data}
    hub.cut_once.add("open_clip_model.safetensors")
    known = downloads.Known("tiny-clip/open_clip_model.safetensors",
                            (downloads.Part("someone/tiny-clip", ("open_clip_model.safetensors",)),))
    path = downloads.fetch(known, "test verifier")
    assert path == str((verifier_files / "tiny-clip" / "open_clip_model.safetensors").resolve())
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == hashlib.sha256(data).hexdigest()
    ranges = hub.gets("open_clip_model.safetensors")
    assert ranges[0] is None and len(ranges) == 2
    resumed_at = int(re.match(r"bytes=(\d+)-", ranges[1]).group(1))
    assert 0 < resumed_at < len(data)  # the second request asked only for the rest


def test_folder_fetches_only_safe_files_and_a_rerun_only_what_is_missing(hub, verifier_files):
    hub.repos["someone/tiny-model"] = {
        "config.json": b'{"model_type": "x"}', "model.safetensors": _safetensors(2),
        "pytorch_model.bin": b"pickle, never fetched", "README.md": b"# card",
    }
    hub.repos["someone/processor"] = {"tokenizer.json": b"{}", "config.json": b'{"other": 1}', "vocab.json": b"{}"}
    known = downloads.Known("tiny-model", (downloads.Part("someone/tiny-model", downloads.HF_MODEL_FILES),
                                           downloads.Part("someone/processor", downloads.PROCESSOR_FILES)), folder=True)
    folder = verifier_files / "tiny-model"
    assert downloads.fetch(known, "test verifier") == str(folder.resolve())
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == [
        "config.json", "model.safetensors", "tokenizer.json", "vocab.json"]
    assert json.loads((folder / "config.json").read_text()) == {"model_type": "x"}  # the processor's config not taken
    assert hub.gets("pytorch_model.bin") == [] and hub.gets("README.md") == []

    (folder / "model.safetensors").unlink()
    hub.requests.clear()
    downloads.fetch(known, "test verifier")
    fetched = [p.rsplit("/", 1)[-1] for m, p, _ in hub.requests if m == "GET" and "/resolve/" in p]
    assert fetched == ["model.safetensors"]


def test_a_broken_download_is_deleted_and_reported(hub, verifier_files):
    hub.repos["someone/broken"] = {"open_clip_model.safetensors": b"\x08\x00\x00\x00\x00\x00\x00\x00not json"}
    known = downloads.Known("broken/open_clip_model.safetensors",
                            (downloads.Part("someone/broken", ("open_clip_model.safetensors",)),))
    with pytest.raises(VerifierError, match=r"broken/open_clip_model.safetensors is broken: it does not parse"):
        downloads.fetch(known, "test verifier")
    assert not (verifier_files / "broken" / "open_clip_model.safetensors").exists()


def test_a_folder_without_safetensors_weights_is_refused(hub, verifier_files):
    hub.repos["someone/pickled"] = {"config.json": b"{}", "pytorch_model.bin": b"pickle"}
    known = downloads.Known("pickled", (downloads.Part("someone/pickled", downloads.HF_MODEL_FILES),), folder=True)
    with pytest.raises(VerifierError) as info:
        downloads.fetch(known, "test verifier")
    where = os.path.join(str(verifier_files), "pickled", "")
    assert str(info.value) == ("test verifier: the Hugging Face repository someone/pickled offers no .safetensors "
                               f"weights, and this pack loads no pickled weights. Convert them to safetensors yourself "
                               f"into {where}")


def test_a_missing_repository_names_repository_and_folder(hub, verifier_files):
    known = downloads.Known("gone/open_clip_model.safetensors",
                            (downloads.Part("someone/gone", ("open_clip_model.safetensors",)),))
    with pytest.raises(VerifierError) as info:
        downloads.fetch(known, "test verifier")
    text = str(info.value)
    assert "could not download" in text and "Hugging Face repository someone/gone" in text
    assert f"into {verifier_files / 'gone'}/" in text
