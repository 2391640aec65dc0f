#!/usr/bin/env bash
# The browser tests (web/tests/run.mjs): Debian's Chromium driven by playwright-core against
# the real server binary. Installs Chromium from Debian's packages when it is missing (as root;
# otherwise it says what to install). Screenshots land in tests/artifacts/browser.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[browser] %s\n' "$*" >&2; }

CHROMIUM="${CHROMIUM_PATH:-/usr/bin/chromium}"
if [[ ! -x "${CHROMIUM}" ]]; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null; then
    log "installing Debian's chromium (once)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null \
      || { apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends chromium chromium-driver >/dev/null; }
  else
    log "Chromium is missing: install Debian's chromium package (or set CHROMIUM_PATH)"
    exit 1
  fi
fi
scripts/web.sh
cargo build --quiet --bin chorus
CHORUS_BIN="$PWD/target/debug/chorus" node web/tests/run.mjs
