"""The download switch's catalogue (verifiers/downloads.py) against the README's "Weights on request"
section, the user's reference: every name a loader offers, the repositories it comes from and the
open_clip architecture it needs, and the file patterns HF folders are fetched with. A change on
either side without the other fails here. No network."""

from __future__ import annotations

import fnmatch
import os
import re
from pathlib import Path

import pytest

from eacps.verifiers import downloads

README = Path(__file__).resolve().parents[2] / "README.md"


def _section() -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index("### Weights on request")
    end = text.index("\n#", start + 1)
    return text[start:end]


def _repo_of(name: str, repo: str) -> str:
    """`facebook/dinov2-*` and `Qwen/<same name>` stand for one repository per name of their row."""
    owner, rest = repo.split("/", 1)
    if rest == "<same name>" or ("*" in rest and fnmatch.fnmatch(name, rest)):
        return f"{owner}/{name}"
    return repo


def readme_catalogue() -> dict[str, tuple[set[str], str | None]]:
    """name under models/verifiers -> (repositories, arch or None), from the README table."""
    rows = [line for line in _section().splitlines() if line.startswith("| `")]
    assert len(rows) >= 8, rows
    out = {}
    for row in rows:
        names_cell, repos_cell = row.split("|")[1:3]
        arch = re.search(r"\(arch ([^)]+)\)", names_cell)
        # the names come before any "(...)" note (arch, or the original file name of a Hub copy)
        names = [n.rstrip("/") for n in re.findall(r"`([^`]+)`", names_cell.split("(")[0])]
        repos = [t for t in re.findall(r"`([^`]+)`", repos_cell) if "/" in t]  # not file names such as `ImageReward.pt`
        for name in names:
            out[name] = ({_repo_of(name, r) for r in repos}, arch.group(1) if arch else None)
    return out


def test_every_downloadable_name_repository_and_arch_is_the_readmes():
    readme = readme_catalogue()
    code = {k.name: ({p.repo for p in k.parts}, k.arch) for k in downloads.ALL}
    assert code == readme


def test_hf_folders_are_fetched_with_the_patterns_the_readme_names():
    sentence = re.search(r"HF folders are fetched as (.+?) only", _section(), re.S).group(1)
    assert set(downloads.HF_MODEL_FILES) == set(re.findall(r"`([^`]+)`", sentence))
    assert len(downloads.HF_MODEL_FILES) == len(set(downloads.HF_MODEL_FILES))


@pytest.mark.parametrize("known", downloads.ALL, ids=lambda k: k.name)
def test_find_takes_a_name_as_a_loader_or_a_path_gives_it(known):
    assert downloads.find(known.name) is known
    assert downloads.find(known.name + "/") is known  # a folder chosen with its trailing slash
    assert downloads.find(known.name.replace("/", os.sep)) is known
    assert downloads.find(known.name, among=(downloads.PICKSCORE,)) is (known if known is downloads.PICKSCORE else None)
