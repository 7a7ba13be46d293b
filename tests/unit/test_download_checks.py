"""What the download switch checks after a download (verifiers/downloads.py check_file), and that
every public-weights entry is well-formed. No network: the files are written here."""

import json

import pytest
import torch
from safetensors.torch import save_file

from eacps.verifiers import downloads
from eacps.verifiers.protocol import VerifierError


def test_a_whole_safetensors_file_passes(tmp_path):
    path = tmp_path / "w.safetensors"
    save_file({"a": torch.zeros(4, 4)}, str(path))
    downloads.check_file(str(path))
    assert path.exists()


@pytest.mark.parametrize("name, content, problem", [
    ("w.safetensors", None, "it does not parse \\(SafetensorError"),  # truncated: filled in below
    ("w.safetensors", b"", "it is empty"),
    ("config.json", b"{\"a\": ", "it does not parse \\(JSONDecodeError"),
    ("head.pth", b"", "it is empty"),
])
def test_a_broken_download_is_deleted_with_a_message(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is None:
        save_file({"a": torch.zeros(64, 64)}, str(path))
        content = path.read_bytes()[:100]
    path.write_bytes(content)
    with pytest.raises(VerifierError, match=f"downloaded file {path} is broken: {problem}.*deleted"):
        downloads.check_file(str(path))
    assert not path.exists()


def test_json_and_other_files_pass(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"a": 1}))
    (tmp_path / "head.pth").write_bytes(b"\x00" * 8)
    downloads.check_file(str(tmp_path / "config.json"))
    downloads.check_file(str(tmp_path / "head.pth"))


def test_catalogue_is_well_formed():
    names = [k.name for k in downloads.ALL]
    assert len(names) == len(set(names))
    for k in downloads.ALL:
        assert k.parts and all("/" in p.repo and p.files for p in k.parts), k
        if not k.folder:  # single files land in a folder named after their repository
            assert k.name == f"{k.parts[0].repo.split('/')[-1]}/{k.parts[0].files[0]}", k
    assert downloads.find("PickScore_v1") is downloads.PICKSCORE
    assert downloads.find("nope") is None
