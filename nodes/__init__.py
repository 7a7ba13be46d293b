"""ComfyUI node adapters. Each module lists its nodes in ``NODES``; the extension registers them all."""

from comfy_api.latest import ComfyExtension, io

from . import loaders, sampling, scoring, selection

NODE_MODULES = (sampling, scoring, selection, loaders)


class EACPSExtension(ComfyExtension):
    async def get_node_list(self) -> list[type[io.ComfyNode]]:
        return [node for module in NODE_MODULES for node in module.NODES]
