"""ComfyUI node adapters. Each module lists its nodes in ``NODES``; the extension registers them all."""

from comfy_api.latest import ComfyExtension, io

from . import loaders, sampling, saving, scoring, search_nodes, selection, workers
from .checks import guard

NODE_MODULES = (sampling, scoring, selection, search_nodes, saving, loaders, workers)


class EACPSExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [guard(node) for module in NODE_MODULES for node in module.NODES]
