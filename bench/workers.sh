#!/usr/bin/env bash
# The workers benchmark: one search over 0-3 local worker ComfyUI servers (see bench/workers.py).
#   ./bench/workers.sh            # the standard run -> bench/results/cpu-<n>core/workers.{json,md}
#   ./bench/workers.sh --quick    # smallest run (no figures written)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$EACPS_PYTHON" bench/workers.py "$@"
