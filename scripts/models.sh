#!/usr/bin/env bash
# Reproduces the shipped models, models/manifest.json and docs/QUALITY.md from the datasets
# (default: ../shared/datasets). Installs the pinned training environment into .local/ first.
# Takes about 17 minutes on 2 cores. Usage: scripts/models.sh [DATASETS_DIR] [--quick]
set -euo pipefail
cd "$(dirname "$0")/.."
DATASETS="${1:-../shared/datasets}"
shift || true
VENV=.local/venv-train
if [[ ! -x "${VENV}/bin/python" ]] || ! cmp -s models/train/requirements.lock "${VENV}/.lock"; then
  echo "[models] installing the training environment (models/train/requirements.lock)" >&2
  python3 -m venv "${VENV}"
  "${VENV}/bin/pip" install --quiet --upgrade pip
  "${VENV}/bin/pip" install --quiet -r models/train/requirements.lock
  cp models/train/requirements.lock "${VENV}/.lock"
fi
PYTHONPATH=models/train "${VENV}/bin/python" -m chorus_train.pipeline \
  --spotify "${DATASETS}/spotify-songs/spotify_songs.csv" \
  --lastfm "${DATASETS}/lastfm-2k" \
  --models-dir models --quality docs/QUALITY.md "$@"
# Then, on the served code: the ranker's calibration (into the manifest) and the group benchmark
# (docs/QUALITY.md, "Groups"), then the bandits' priors; a few minutes on 2 cores.
scripts/setup.sh
cargo run --release --quiet --bin chorus -- eval-groups --groups 150 --write-calibration \
  --quality docs/QUALITY.md
# The bandits' warm start: each arm's offline quality per context (into the manifest).
cargo run --release --quiet --bin chorus -- eval-priors --write --quality docs/QUALITY.md
