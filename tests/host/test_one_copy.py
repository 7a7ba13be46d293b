"""Tests and the host share one copy of the pack, so isinstance checks and exception types match."""

import sys

import pytest

pytestmark = pytest.mark.host


def test_eacps_modules_are_the_ones_comfyui_loaded(comfy):
    from eacps.verifiers import base

    node_cls = comfy.nodes.NODE_CLASS_MAPPINGS["EACPS_VerifierScore"]
    node_module = sys.modules[node_cls.__module__]
    assert node_module.__name__.endswith(".nodes.scoring")
    pack_prefix = node_module.__name__[: -len(".nodes.scoring")]
    assert sys.modules[pack_prefix + ".verifiers.base"] is base
