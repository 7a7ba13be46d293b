"""``EACPSLab_CountNFE``: counts the model evaluations (NFE) a graph really makes, for the quality
benchmark's equal-compute comparisons.

It clones the MODEL and sets ComfyUI's UNet function wrapper (``model_function_wrapper``, which
``comfy.samplers`` calls once per batched model call); the wrapper adds the call's batch rows to
``COUNTS[key]`` and then runs the model unchanged. With CFG, ComfyUI batches the conditional and
unconditional rows into one call, so one euler step of one candidate counts 2. A MODEL that already
has a wrapper is refused (counting around it would hide what it does).
"""

from __future__ import annotations

COUNTS: dict[str, int] = {}


def reset(key: str) -> None:
    COUNTS[key] = 0


class CountNFE:
    CATEGORY = "EACPS lab"
    RETURN_TYPES = ("MODEL",)
    FUNCTION = "wrap"
    DESCRIPTION = "The same model, counting model evaluations (batch rows per call) under 'key'."

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL",), "key": ("STRING", {"default": "nfe"})}}

    def wrap(self, model, key):
        if "model_function_wrapper" in model.model_options:
            raise ValueError("EACPSLab_CountNFE: this MODEL already has a UNet function wrapper; put the "
                             "counter before the node that sets it")
        COUNTS.setdefault(key, 0)

        def counting(apply_model, args):
            COUNTS[key] += int(args["input"].shape[0])
            return apply_model(args["input"], args["timestep"], **args["c"])

        counted = model.clone()
        counted.set_model_unet_function_wrapper(counting)
        return (counted,)


NODE_CLASS_MAPPINGS = {"EACPSLab_CountNFE": CountNFE}
NODE_DISPLAY_NAME_MAPPINGS = {"EACPSLab_CountNFE": "EACPS Lab Count NFE"}
