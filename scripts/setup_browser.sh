#!/usr/bin/env bash
# Headless Chromium for the browser tests (tests/browser): Debian's `chromium` package (plus a font),
# driven by Playwright from PyPI (pinned in requirements-dev.txt) through executable_path. Never
# `playwright install`: that downloads Playwright's own browser build, which package registries do not carry.
# Sourced by scripts/setup.sh; idempotent. Where Chromium cannot be installed (no apt-get, not root and
# no password-less sudo) it says so and the browser tests skip with the same message, except in CI (CI=true),
# where they fail.

ensure_browser() {
  [[ -x /usr/bin/chromium ]] && return 0
  local sudo=()
  if [[ "$(id -u)" -ne 0 ]]; then
    if command -v sudo >/dev/null && sudo -n true 2>/dev/null; then sudo=(sudo -n); else
      log "Chromium missing and not root: browser tests will skip (as root: apt-get install -y chromium fonts-dejavu-core)"
      return 0
    fi
  fi
  if ! command -v apt-get >/dev/null; then
    log "Chromium missing and no apt-get: browser tests will skip (install Debian's chromium at /usr/bin/chromium)"
    return 0
  fi
  log "installing Debian's chromium and fonts-dejavu-core for the browser tests (one-off, ~1 min)"
  "${sudo[@]}" apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq chromium fonts-dejavu-core >/dev/null \
    || log "apt-get could not install chromium: browser tests will skip"
}

ensure_browser
