"""Access to the lab folder's plain modules (``lab/world.py``) from inside the ComfyUI pack.

ComfyUI imports this pack under a name made from its folder path, so ``lab/`` is not a parent
package here; world.py is loaded once by file path under a fixed module name instead.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

LAB_DIR = Path(__file__).resolve().parent.parent
WEIGHTS_DIR = LAB_DIR / "weights"


def _load(name: str):
    module_name = f"eacps_lab_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, LAB_DIR / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


world = _load("world")
