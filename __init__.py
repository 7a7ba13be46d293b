"""EACPS for ComfyUI: inference-time search over the starting noise, scored by verifier models.

ComfyUI loads this folder as a custom node pack and calls ``comfy_entrypoint``. Nothing else
happens at import, so ``search`` and ``verifiers`` stay importable without a running ComfyUI.
"""


async def comfy_entrypoint():
    from .nodes import EACPSExtension

    return EACPSExtension()
