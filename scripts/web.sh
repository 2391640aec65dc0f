#!/usr/bin/env bash
# Builds the web app (web/ → web/dist) with the project's pinned npm packages, only when
# something changed: `npm ci` when package-lock.json is newer than the installed packages, the
# bundle when a source is newer than it. Everything comes from the npm registry; the built page
# loads nothing from a CDN.
set -euo pipefail
cd "$(dirname "$0")/../web"

log() { printf '[web] %s\n' "$*" >&2; }

command -v npm >/dev/null || {
  log "Node.js and npm are needed to build the web app (Debian: apt-get install nodejs npm)"
  exit 1
}
if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  log "installing npm packages (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi
if [[ ! -f dist/assets/app.js ]] || [[ -n "$(find src index.html build.mjs package-lock.json -newer dist/assets/app.js -print -quit)" ]]; then
  log "type-checking and building"
  npx --no-install tsc --noEmit
  node build.mjs
fi
