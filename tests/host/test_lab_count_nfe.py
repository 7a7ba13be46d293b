"""EACPSLab_CountNFE counts model evaluations: a stock KSampler with euler makes one model call per
step, and with CFG != 1 each call carries the conditional and the unconditional row of every latent
(ComfyUI skips the unconditional rows at CFG 1). Expected counts are steps x rows, by hand."""

from __future__ import annotations

import sys

import pytest

from host.graphs import base_nodes, capture, ksampler_node

pytestmark = pytest.mark.host


@pytest.mark.parametrize(("cfg", "batch", "steps", "expected"), [(5.0, 2, 3, 3 * 2 * 2), (1.0, 2, 3, 3 * 2),
                                                                   (5.0, 1, 4, 4 * 2)])
def test_count_nfe_counts_batch_rows_per_model_call(comfy, cfg, batch, steps, expected):
    counts = sys.modules[comfy.nodes.NODE_CLASS_MAPPINGS["EACPSLab_CountNFE"].__module__].COUNTS
    p = base_nodes(batch_size=batch)
    p["counted"] = {"class_type": "EACPSLab_CountNFE", "inputs": {"model": ["model", 0], "key": "test_nfe"}}
    p["ks"] = ksampler_node(seed=steps * 100 + batch, steps=steps, cfg=cfg)
    p["ks"]["inputs"]["model"] = ["counted", 0]
    p["cap"] = capture(["ks", 0], "nfe_latent")
    counts["test_nfe"] = 0
    comfy.run(p)
    assert counts["test_nfe"] == expected
