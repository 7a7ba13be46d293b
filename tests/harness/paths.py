"""Where things are: the repo, the ComfyUI host, and a throw-away ComfyUI base directory."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
TEST_PACK = REPO_ROOT / "tests" / "comfy_test_pack"
PACK_FOLDER_NAME = "eacps"
TEST_PACK_FOLDER_NAME = "eacps_test_pack"
# Another author's pack offering a verifier through the duck-typed protocol (it imports nothing of ours).
THIRD_PARTY_PACK = REPO_ROOT / "tests" / "third_party_pack"
THIRD_PARTY_PACK_FOLDER_NAME = "third_party_verifier_pack"
LAB_PACK = REPO_ROOT / "lab" / "comfy_lab_pack"
LAB_PACK_FOLDER_NAME = "eacps_lab"


def comfyui_path() -> Path:
    """The ComfyUI source tree: $COMFYUI_PATH, else the one scripts/setup.sh installs."""
    path = Path(os.environ.get("COMFYUI_PATH") or REPO_ROOT / ".comfyui" / "ComfyUI")
    if not (path / "main.py").is_file():
        raise RuntimeError(
            f"no ComfyUI at {path}: run ./scripts/test.sh (it installs one) or set COMFYUI_PATH"
        )
    return path


def make_base_dir(base: Path, with_test_pack: bool = True) -> Path:
    """A ComfyUI --base-directory holding only this pack (and the test packs: ours, a third
    party's and the lab's) in custom_nodes.

    The host's own custom_nodes and models folders are left alone, so tests never touch a user's
    installation and never load the pack twice.
    """
    for sub in ("custom_nodes", "models", "input", "output", "temp", "user"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    links = {PACK_FOLDER_NAME: REPO_ROOT}
    if with_test_pack:
        links[TEST_PACK_FOLDER_NAME] = TEST_PACK
        links[THIRD_PARTY_PACK_FOLDER_NAME] = THIRD_PARTY_PACK
        links[LAB_PACK_FOLDER_NAME] = LAB_PACK
    for name, target in links.items():
        link = base / "custom_nodes" / name
        if not link.exists():
            link.symlink_to(target, target_is_directory=True)
    return base
