"""Shared fixtures.

- ``eacps``: the pack imported as a package (as ComfyUI does), for unit tests that need no host.
- ``comfy``: one real in-process ComfyUI per test session, with this pack and the test pack.
- ``server``: one real ComfyUI HTTP server on a loopback port per test session.
"""

from __future__ import annotations

import atexit
import importlib.abc
import importlib.machinery
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

# A stray download must fail loudly instead of hanging: tests never need the network.
for _var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ[_var] = "1"

TESTS = Path(__file__).resolve().parent
sys.path.insert(0, str(TESTS))  # for `harness`

from harness.paths import PACK_FOLDER_NAME, make_base_dir  # noqa: E402

# The ComfyUI base directory of the in-process host. Made now, because its path fixes the module
# name under which ComfyUI imports the pack: ComfyUI names a custom node package after its folder
# path (dots replaced by "_x_").
# scripts/mutation/forkserver.py imports ComfyUI once for many test runs and so fixes the base
# directory for all of them (folder_paths reads it at import): it passes it in this variable.
if os.environ.get("EACPS_TEST_COMFY_BASE"):
    COMFY_BASE = make_base_dir(Path(os.environ["EACPS_TEST_COMFY_BASE"]))
else:
    COMFY_BASE = make_base_dir(Path(tempfile.mkdtemp(prefix="eacps_comfy_")))
    atexit.register(shutil.rmtree, COMFY_BASE, ignore_errors=True)
COMFY_PACK_MODULE = str(COMFY_BASE / "custom_nodes" / PACK_FOLDER_NAME).replace(".", "_x_")


class _AliasLoader(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return importlib.import_module(self.target)

    def exec_module(self, module):
        pass


class _PackAlias(importlib.abc.MetaPathFinder):
    """``import eacps.x`` gives the very module ComfyUI imports as ``<COMFY_PACK_MODULE>.x``, so
    tests and the host share one copy of every class (isinstance checks, exception types)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(PACK_FOLDER_NAME + "."):
            target = COMFY_PACK_MODULE + fullname[len(PACK_FOLDER_NAME):]
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(target))
        return None


def _import_pack():
    """Import the repo root as a package without putting the repo root on sys.path (ComfyUI has
    its own top-level ``nodes`` module that our ``nodes/`` must not shadow)."""
    spec = importlib.util.spec_from_file_location(
        COMFY_PACK_MODULE,
        COMFY_BASE / "custom_nodes" / PACK_FOLDER_NAME / "__init__.py",
        submodule_search_locations=[str(COMFY_BASE / "custom_nodes" / PACK_FOLDER_NAME)],
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[COMFY_PACK_MODULE] = module
    spec.loader.exec_module(module)
    sys.modules[PACK_FOLDER_NAME] = module
    sys.meta_path.insert(0, _PackAlias())


_import_pack()


@pytest.fixture(scope="session")
def comfy_base() -> Path:
    return COMFY_BASE


@pytest.fixture(scope="session")
def comfy(comfy_base):
    from harness.inprocess import InProcessComfy

    return InProcessComfy(comfy_base)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    from harness.server import ComfyServer

    base = make_base_dir(tmp_path_factory.mktemp("server_base"))
    srv = ComfyServer(base, base / "server.log")
    yield srv
    srv.stop()


@pytest.fixture(scope="session")
def captured(comfy):
    """The test pack's capture dict: what EACPSTest_Capture nodes stored in the last prompts."""
    cls = comfy.nodes.NODE_CLASS_MAPPINGS["EACPSTest_Capture"]
    return sys.modules[cls.__module__].CAPTURED


@pytest.fixture(scope="session")
def verifier_files(comfy, tmp_path_factory) -> Path:
    """models/verifiers of the test host, holding tiny real-format verifier models."""
    from verifier_models import register_tiny_open_clip, write_aesthetic_head, write_dinov2, write_open_clip

    folder = comfy.base_dir / "models" / "verifiers"
    folder.mkdir(parents=True, exist_ok=True)
    register_tiny_open_clip(tmp_path_factory.mktemp("open_clip_configs"))
    write_open_clip(folder / "tiny_clip.safetensors")
    write_aesthetic_head(folder / "tiny_aesthetic_head.pth", input_size=32,
                         clip_weights=folder / "tiny_clip.safetensors")
    write_dinov2(folder / "tiny_dinov2")
    return folder


@pytest.fixture(scope="session")
def judge_files(verifier_files) -> Path:
    from verifier_models import write_tiny_qwen2_vl

    write_tiny_qwen2_vl(verifier_files / "tiny_qwen2vl")
    return verifier_files


@pytest.fixture(scope="session")
def preference_files(verifier_files) -> Path:
    from verifier_models import write_hps, write_tiny_imagereward, write_tiny_pickscore

    write_tiny_pickscore(verifier_files / "tiny_pickscore")
    write_tiny_imagereward(verifier_files / "tiny_imagereward")
    write_hps(verifier_files / "tiny_hps.pt")
    return verifier_files


def pytest_collection_finish(session):
    """Start the benchmark quick runs that collected tests check, so they overlap the suite."""
    from harness import background

    for item in session.items:
        script = background.RUNS.get(item.nodeid)
        if script is not None:
            background.start(script)
