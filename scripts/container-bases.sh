#!/usr/bin/env bash
# Makes the two base images the Dockerfile needs without a container registry, for machines
# that reach Debian's package mirror but not Docker Hub (like the one this project is built on):
#   localhost/debian:bookworm-slim   a minimal Debian 12 made by debootstrap
#   localhost/rust:1.95-bookworm     that, plus gcc, this machine's stable Rust toolchain and its
#                                    extra CA certificates (/usr/local/share/ca-certificates:
#                                    behind a TLS-inspecting proxy, PyPI and npm need them)
# Then build the image with buildah (no daemon; chroot isolation works inside a sandbox):
#   buildah bud --isolation chroot --build-arg RUST_IMAGE=localhost/rust:1.95-bookworm \
#     --build-arg RUNTIME_IMAGE=localhost/debian:bookworm-slim -t chorus .
# Needs root, debootstrap, buildah and podman (Debian packages of those names).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[bases] %s\n' "$*" >&2; }
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
WORK="$(mktemp -d)"
trap 'rm -rf "${WORK}"' EXIT

for tool in debootstrap buildah podman; do
  command -v "${tool}" >/dev/null || { log "${tool} is missing: apt-get install ${tool}"; exit 1; }
done

if ! podman image exists localhost/debian:bookworm-slim; then
  log "debootstrap bookworm (minbase) from ${MIRROR}"
  debootstrap --variant=minbase bookworm "${WORK}/rootfs" "${MIRROR}" >/dev/null
  tar -C "${WORK}/rootfs" -c . | podman import --change 'CMD ["/bin/bash"]' - localhost/debian:bookworm-slim >/dev/null
fi

if ! podman image exists localhost/rust:1.95-bookworm; then
  RUSTUP_HOME="${RUSTUP_HOME:-${HOME}/.rustup}"
  CARGO_HOME="${CARGO_HOME:-${HOME}/.cargo}"
  toolchain="$(ls -d "${RUSTUP_HOME}"/toolchains/stable-* | head -n1)"
  [[ -d "${toolchain}" ]] || { log "no stable Rust toolchain under ${RUSTUP_HOME}"; exit 1; }
  log "Rust image from $(basename "${toolchain}") ($("${toolchain}/bin/rustc" --version))"
  mkdir -p "${WORK}/rust/rustup/toolchains" "${WORK}/rust/cargo"
  cp -a "${toolchain}" "${WORK}/rust/rustup/toolchains/"
  printf 'default_toolchain = "%s"\nversion = "12"\n' "$(basename "${toolchain}")" >"${WORK}/rust/rustup/settings.toml"
  cp -a "${CARGO_HOME}/bin" "${WORK}/rust/cargo/"
  mkdir -p "${WORK}/rust/ca"
  cp /usr/local/share/ca-certificates/*.crt "${WORK}/rust/ca/" 2>/dev/null || true
  cat >"${WORK}/rust/Containerfile" <<'EOF'
FROM localhost/debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY ca /usr/local/share/ca-certificates
RUN update-ca-certificates
COPY rustup /usr/local/rustup
COPY cargo /usr/local/cargo
ENV RUSTUP_HOME=/usr/local/rustup CARGO_HOME=/usr/local/cargo PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
RUN cargo --version && rustc --version
EOF
  buildah bud --isolation chroot -t localhost/rust:1.95-bookworm "${WORK}/rust" >/dev/null
fi
podman images --filter reference='localhost/*'
