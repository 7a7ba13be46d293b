"""EACPS lab pack: the lab world's trained text-to-image model (and its judges) as ComfyUI nodes.

Installed into a ComfyUI host only by the tests, the demo and the benchmarks (tests/harness/paths.py
make_base_dir), never by the product pack. Each node module adds its mappings below.
"""

from __future__ import annotations

from . import world_nodes

NODE_CLASS_MAPPINGS: dict = {}
NODE_DISPLAY_NAME_MAPPINGS: dict = {}
for _module in (world_nodes,):
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
