#!/usr/bin/env bash
# Set up (first run only), then run the pack's main job headless through a real ComfyUI on the
# embedded tiny model (no weights needed). Results go to demo_output/.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
exec "$EACPS_PYTHON" scripts/demo.py "$@"
