"""The pack loads through ComfyUI's own loader, and every node it declares is registered.

ComfyUI only logs an import error inside a pack (the pack then quietly vanishes), so these tests
are what notices a broken import.
"""

import json

import pytest

from harness.paths import PACK_FOLDER_NAME, REPO_ROOT

DECLARED = json.loads((REPO_ROOT / "node_list.json").read_text())

pytestmark = pytest.mark.host


def test_pack_is_loaded_by_comfyui(comfy):
    assert PACK_FOLDER_NAME in comfy.nodes.LOADED_MODULE_DIRS
    assert comfy.nodes.LOADED_MODULE_DIRS[PACK_FOLDER_NAME].endswith(PACK_FOLDER_NAME)


def test_registered_nodes_equal_node_list(comfy):
    registered = {
        name for name, cls in comfy.nodes.NODE_CLASS_MAPPINGS.items() if name.startswith("EACPS_")
    }
    assert registered == set(DECLARED), (
        "node_list.json (read by ComfyUI-Manager) and the registered nodes differ: "
        f"missing {sorted(set(DECLARED) - registered)}, undeclared {sorted(registered - set(DECLARED))}"
    )


def test_entrypoint_errors_are_not_swallowed(comfy):
    """ComfyUI logs a failing comfy_entrypoint and moves on; calling it here raises instead."""
    import asyncio
    import sys

    pack = sys.modules[PACK_FOLDER_NAME]
    extension = asyncio.run(pack.comfy_entrypoint())
    nodes = asyncio.run(extension.get_node_list())
    assert sorted(n.GET_SCHEMA().node_id for n in nodes) == sorted(DECLARED)


@pytest.mark.server
def test_server_lists_every_node(server):
    info = server.get("/object_info")
    missing = [n for n in DECLARED if n not in info]
    assert not missing, f"/object_info lacks {missing}; server log:\n{server.log()}"
    assert "EACPSTest_TinyModel" in info, "the test pack did not load into the server"


def test_the_socket_types_are_the_ones_saved_workflows_link(comfy):
    """A link in a saved workflow carries its socket type (example_workflows/*.json: "EACPS_CANDIDATES",
    "EACPS_VERIFIER"; other packs' verifier loaders declare "EACPS_VERIFIER", README)."""
    import json

    from harness.paths import REPO_ROOT

    linked = {link[5] for path in sorted((REPO_ROOT / "example_workflows").glob("*.json"))
              for link in json.loads(path.read_text())["links"]}
    assert {"EACPS_CANDIDATES", "EACPS_VERIFIER"} <= linked, linked
    nodes = comfy.nodes.NODE_CLASS_MAPPINGS
    assert nodes["EACPS_SeedSearchGlobal"].GET_NODE_INFO_V1()["output"][0] == "EACPS_CANDIDATES"
    assert nodes["EACPS_VerifierScore"].GET_NODE_INFO_V1()["input"]["required"]["candidates"][0] == "EACPS_CANDIDATES"
    assert nodes["EACPS_LoadTechnicalVerifier"].GET_NODE_INFO_V1()["output"][0] == "EACPS_VERIFIER"
