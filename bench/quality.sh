#!/usr/bin/env bash
# The quality benchmark (issue #10): held-out E against compute (NFE) on the lab world.
#   ./bench/quality.sh            # standard run -> bench/results/quality-cpu-<n>core/
#   ./bench/quality.sh --quick    # machinery check (CI); writes to bench/results/tmp/quality-quick/
#   ./bench/quality.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
exec "$EACPS_PYTHON" bench/quality.py "$@"
