"""A real ComfyUI running in this Python process: its own custom-node loader, validator and
PromptExecutor, with a minimal stand-in for the PromptServer (which is not needed to execute)."""

from __future__ import annotations

import asyncio
import importlib
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .paths import (
    LAB_PACK_FOLDER_NAME,
    PACK_FOLDER_NAME,
    TEST_PACK_FOLDER_NAME,
    THIRD_PARTY_PACK_FOLDER_NAME,
    comfyui_path,
)


class _EventSink:
    """What PromptExecutor needs from a server: attributes it sets and messages it sends."""

    def __init__(self) -> None:
        self.client_id = None
        self.last_node_id = None
        self.last_prompt_id = None
        self.events: list[tuple[str, Any]] = []

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))

    def queue_updated(self):
        pass


@dataclass
class PromptResult:
    prompt_id: str
    success: bool
    outputs: dict[str, Any]
    status_messages: list[tuple[str, Any]]
    events: list[tuple[str, Any]] = field(default_factory=list)

    def error(self) -> str:
        for kind, data in self.status_messages:
            if kind == "execution_error":
                return f"{data.get('node_type')}: {data.get('exception_message')}"
        return "no execution_error reported"


class PromptInvalid(AssertionError):
    """validate_prompt refused the prompt (node errors are in .details)."""

    def __init__(self, details):
        super().__init__(f"prompt refused by ComfyUI's validator: {details}")
        self.details = details


class InProcessComfy:
    """Boots ComfyUI once per process. Use ``run(prompt)`` for API-format prompts.

    ``cpu=False`` lets ComfyUI pick its device (CUDA when available): for the GPU benchmarks."""

    _booted = False

    def __init__(self, base_dir: Path, cpu: bool = True):
        if InProcessComfy._booted:
            raise RuntimeError("ComfyUI can be booted once per process; share the instance")
        InProcessComfy._booted = True
        host = comfyui_path()
        sys.path.insert(0, str(host))
        import comfy.cli_args  # noqa: E402  (must precede comfy.model_management)

        comfy.cli_args.args.cpu = cpu
        comfy.cli_args.args.base_directory = str(base_dir)
        comfy.cli_args.args.disable_api_nodes = True
        # As main.py does: import these first so `utils` resolves to ComfyUI's package, not to
        # comfy/utils.py; several comfy_extras fail to import otherwise.
        importlib.import_module("utils.extra_config")
        importlib.import_module("utils.install_util")
        import execution
        import folder_paths
        import nodes

        folder_paths.set_output_directory(str(base_dir / "output"))
        folder_paths.set_input_directory(str(base_dir / "input"))
        folder_paths.set_temp_directory(str(base_dir / "temp"))
        asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
        self.nodes = nodes
        self.execution = execution
        self.folder_paths = folder_paths
        self.base_dir = base_dir
        self.sink = _EventSink()
        self.executor = execution.PromptExecutor(
            self.sink, cache_type=execution.CacheType.CLASSIC, cache_args={"lru": 0, "ram": 0}
        )
        missing = [
            name for name in (PACK_FOLDER_NAME, TEST_PACK_FOLDER_NAME, THIRD_PARTY_PACK_FOLDER_NAME, LAB_PACK_FOLDER_NAME)
            if name not in nodes.LOADED_MODULE_DIRS
        ]
        if missing:
            raise RuntimeError(f"ComfyUI did not load {missing}; see the log above for the import error")

    def pack_module(self, name: str):
        """A module of this pack as ComfyUI imported it (under its folder path), e.g.
        ``pack_module("nodes.runner")``; benchmarks reach the runner and strategies this way."""
        import importlib

        pack = self.nodes.NODE_CLASS_MAPPINGS["EACPS_Search"].__module__.rsplit(".", 2)[0]
        return importlib.import_module(f"{pack}.{name}")

    def validate(self, prompt: dict) -> list[str]:
        valid = asyncio.run(self.execution.validate_prompt(str(uuid.uuid4()), prompt, None))
        if not valid[0]:
            raise PromptInvalid({"error": valid[1], "node_errors": valid[3]})
        return valid[2]

    def run(self, prompt: dict, expect_success: bool = True) -> PromptResult:
        outputs = self.validate(prompt)
        prompt_id = str(uuid.uuid4())
        self.sink.events = []
        self.executor.execute(prompt, prompt_id, {"client_id": None}, outputs)
        result = PromptResult(
            prompt_id=prompt_id,
            success=self.executor.success,
            outputs=dict(self.executor.history_result.get("outputs", {})),
            status_messages=list(self.executor.status_messages),
            events=list(self.sink.events),
        )
        if expect_success and not result.success:
            raise AssertionError(f"prompt failed: {result.error()}")
        return result

