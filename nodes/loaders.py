"""Verifier loader nodes that need no weights. Model-verifier loaders live in their own module."""

from __future__ import annotations

from comfy_api.latest import io

from ..verifiers.technical import TechnicalQualityVerifier
from .types import Verifier as VerifierSocket


class LoadTechnicalVerifier(io.ComfyNode):
    @classmethod
    def define_schema(cls):
        return io.Schema(
            node_id="EACPS_LoadTechnicalVerifier",
            display_name="EACPS Load Technical Verifier",
            category="EACPS",
            description=(
                "Technical image quality without a model: 'sharpness' (log variance of the Laplacian, "
                "-5 -> 0 and -1 -> 10) and 'exposure' (unclipped fraction x mid-grey balance, 0..1 -> 0..10). "
                "Pure noise counts as sharp: pair it with a content verifier."
            ),
            inputs=[
                io.Int.Input("size", default=512, min=0, max=8192,
                             tooltip="Longer side the image is resized to before measuring (0: native), so "
                                     "scores compare across resolutions."),
            ],
            outputs=[VerifierSocket.Output(display_name="verifier", tooltip="The verifier, for EACPS Verifier Score.")],
        )

    @classmethod
    def execute(cls, size) -> io.NodeOutput:
        return io.NodeOutput(TechnicalQualityVerifier(size=int(size)))


NODES = (LoadTechnicalVerifier,)
