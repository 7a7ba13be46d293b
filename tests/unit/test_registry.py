"""Registry readiness, checked with comfy-cli's own code (pinned in requirements-dev.txt):

- `comfy node validate` passes on the repository. It runs offline and without prompting when
  given `--skip-prompt`, no standard input, a fresh HOME and DO_NOT_TRACK=1 (no telemetry consent
  question, no network); it parses pyproject.toml (comfy_cli.registry.config_parser
  extract_node_configuration) and runs ruff's exec/eval rules.
- The archive `comfy node publish` uploads (comfy_cli.file_utils.zip_files: git-tracked files minus
  .comfyignore) holds the whole pack and none of the development material.
- LICENSE is the GPL-3.0 text pyproject declares; the registry Icon points at the committed PNG.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import tomllib
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
COMFY = Path(sys.executable).with_name("comfy")
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())


def _comfy(args: list[str], cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "HOME": str(home), "XDG_CONFIG_HOME": str(home / ".config"), "DO_NOT_TRACK": "1"}
    return subprocess.run([str(COMFY), "--skip-prompt", "--no-json", *args], cwd=cwd, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)


def test_comfy_node_validate_passes(tmp_path):
    result = _comfy(["node", "validate"], REPO, tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "All validation checks passed successfully" in out, out
    assert not re.search(r"warning|error", out, re.IGNORECASE), out


def test_comfy_node_validate_fails_on_a_broken_pyproject(tmp_path):
    """The check above is live: the same command refuses a pyproject without a version."""
    work = tmp_path / "pack"
    work.mkdir()
    text = (REPO / "pyproject.toml").read_text()
    (work / "pyproject.toml").write_text(re.sub(r'(?m)^version = ".*"\n', "", text, count=1))
    result = _comfy(["node", "validate"], work, tmp_path)
    assert result.returncode != 0
    assert "project version is empty" in result.stdout + result.stderr


def test_registry_metadata():
    from comfy_cli.registry.config_parser import extract_node_configuration

    config = extract_node_configuration(str(REPO / "pyproject.toml"))
    assert config is not None
    assert config.project.name == "eacps" and re.fullmatch(r"\d+\.\d+\.\d+", config.project.version)
    assert config.project.license.text == "GPL-3.0-or-later"
    assert config.tool_comfy.publisher_id and config.tool_comfy.display_name
    requirements = [line.strip() for line in (REPO / "requirements.txt").read_text().splitlines()
                    if line.strip() and not line.startswith("#")]
    assert config.project.dependencies == requirements
    repo_url = PYPROJECT["project"]["urls"]["Repository"]
    owner_name = repo_url.removeprefix("https://github.com/")
    assert config.tool_comfy.icon == f"https://raw.githubusercontent.com/{owner_name}/main/docs/icon.png"


def test_icon_is_a_small_square_png():
    path = REPO / "docs" / "icon.png"
    with Image.open(path) as icon:
        assert icon.format == "PNG" and icon.width == icon.height and 64 <= icon.width <= 512
    assert path.stat().st_size < 50_000


def test_license_is_the_gpl_v3_text():
    text = (REPO / "LICENSE").read_text()
    assert text.lstrip().startswith("GNU GENERAL PUBLIC LICENSE")
    assert "Version 3, 29 June 2007" in text[:200] and "END OF TERMS AND CONDITIONS" in text
    assert len(text) > 30_000  # the full text, not a stub


def _tracked() -> list[str]:
    out = subprocess.run(["git", "-C", str(REPO), "ls-files"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if line and (REPO / line).exists()]


@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> set[str]:
    from comfy_cli.file_utils import zip_files

    target = tmp_path_factory.mktemp("pack") / "node.zip"
    cwd = os.getcwd()
    os.chdir(REPO)  # zip_files works on the current directory, as `comfy node pack` does
    try:
        zip_files(str(target), PYPROJECT["tool"]["comfy"].get("includes", []))
    finally:
        os.chdir(cwd)
    with zipfile.ZipFile(target) as z:
        return set(z.namelist())


DEV_ONLY = ("tests/", "bench/", "lab/", "scripts/", ".ci/", ".github/")


def test_archive_holds_the_pack(archive):
    for name in ("__init__.py", "pyproject.toml", "README.md", "LICENSE", "requirements.txt", "node_list.json",
                 "docs/verifiers.md"):
        assert name in archive, name
    code = [f for f in _tracked() if f.split("/")[0] in ("nodes", "search", "verifiers", "example_workflows")]
    assert code and not [f for f in code if f not in archive]


def test_archive_leaves_development_material_out(archive):
    assert not [n for n in archive if n.startswith(DEV_ONLY) or re.fullmatch(r"docs/.*\.(png|jpg)", n)]
    assert "requirements-dev.txt" not in archive
