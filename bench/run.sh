#!/usr/bin/env bash
# One command for the EACPS benchmarks (issue #6). Sets up the venv and ComfyUI host on first use
# (scripts/setup.sh), then runs bench/bench.py with the venv's Python. Arguments go to bench.py:
#   ./bench/run.sh                    # CPU: tiny model, all parts -> bench/results/cpu-<n>core/
#   ./bench/run.sh --gpu              # CUDA: SD1.5, SDXL, FLUX + real-size verifiers -> bench/results/cuda-<gpu>/
#   ./bench/run.sh --gpu --models sd15   # one model per command; results merge into the same files
#   ./bench/run.sh --smoke            # the real-architecture path at tiny sizes (checks it runs; no figures)
#   ./bench/run.sh samplers           # per-candidate time at sub-batch 1 vs 8 per sampler (bench/samplers.py)
#   ./bench/run.sh --help
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1
if [[ "${1:-}" == "samplers" ]]; then
    shift
    exec "$EACPS_PYTHON" bench/samplers.py "$@"
fi
exec "$EACPS_PYTHON" bench/bench.py "$@"
