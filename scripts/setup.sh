#!/usr/bin/env bash
# Installs what Chorus needs beside the Rust toolchain, into .local/ (git-ignored), and only
# what is missing: safe to run every time.
#   - ONNX Runtime's shared library, taken from the `onnxruntime` wheel on PyPI (the `ort`
#     crate loads it at run time; nothing is downloaded from anywhere else).
#   - The web app's npm packages and its build (scripts/web.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

ORT_VERSION="1.31.1"
ORT_DIR=".local/onnxruntime-${ORT_VERSION}"
ORT_LIB="${ORT_DIR}/libonnxruntime.so"

log() { printf '[setup] %s\n' "$*" >&2; }

install_onnxruntime() {
  if [[ -f "${ORT_LIB}" ]]; then
    return
  fi
  command -v python3 >/dev/null || { log "python3 is required to fetch ONNX Runtime"; exit 1; }
  log "fetching onnxruntime ${ORT_VERSION} from PyPI"
  local wheels
  wheels="$(mktemp -d)"
  python3 -m pip download --quiet --no-deps --only-binary=:all: \
    --dest "${wheels}" "onnxruntime==${ORT_VERSION}"
  mkdir -p "${ORT_DIR}"
  python3 - "${wheels}" "${ORT_DIR}" <<'PY'
import glob, os, shutil, sys, zipfile
wheels, out = sys.argv[1], sys.argv[2]
(wheel,) = glob.glob(os.path.join(wheels, "onnxruntime-*.whl"))
with zipfile.ZipFile(wheel) as z:
    names = [n for n in z.namelist() if os.path.basename(n).startswith("libonnxruntime.so")]
    if not names:
        sys.exit(f"no libonnxruntime.so in {wheel}")
    for name in names:
        target = os.path.join(out, os.path.basename(name))
        with z.open(name) as src, open(target, "wb") as dst:
            shutil.copyfileobj(src, dst)
    versioned = os.path.basename(sorted(names, key=len)[-1])
link = os.path.join(out, "libonnxruntime.so")
if not os.path.exists(link):
    os.symlink(versioned, link)
PY
  rm -rf "${wheels}"
  ln -sfn "onnxruntime-${ORT_VERSION}" .local/onnxruntime
  log "ONNX Runtime installed at ${ORT_LIB}"
}

install_onnxruntime
scripts/web.sh
