#!/usr/bin/env bash
# Set up (first run only) and run the test suite. Extra arguments go to pytest.
#   ./scripts/test.sh                 # everything
#   ./scripts/test.sh -k noise -x     # a subset
# COMFYUI_PATH=/path/to/ComfyUI ./scripts/test.sh   # test against an existing ComfyUI
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
"$EACPS_PYTHON" -m ruff check .
exec "$EACPS_PYTHON" -m pytest "$@"
