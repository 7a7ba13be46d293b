"""The loaders tell users the file names the README's verifier table names (the published files),
so a renamed constant in the pack cannot send a user looking for a file that does not exist."""

from __future__ import annotations

import re

import pytest

from harness.paths import REPO_ROOT

pytestmark = pytest.mark.host


def readme_row(verifier: str) -> str:
    rows = [line for line in (REPO_ROOT / "README.md").read_text(encoding="utf-8").splitlines()
            if line.startswith(f"| {verifier} ")]
    assert len(rows) == 1, f"the README's verifier table has {len(rows)} rows for {verifier}"
    return rows[0]


def test_the_aesthetic_loader_names_the_published_head_file(comfy):
    head = re.search(r"head `([^`]+)`", readme_row("Aesthetic")).group(1)
    assert head == "sac+logos+ava1-l14-linearMSE.pth"  # the LAION predictor's release name
    spec = comfy.nodes.NODE_CLASS_MAPPINGS["EACPS_LoadAestheticVerifier"].INPUT_TYPES()["required"]["head_weights"]
    assert f"({head})" in spec[1]["tooltip"], spec
