#!/usr/bin/env bash
# Regenerates tests/reference/stats.json (the SciPy/statsmodels values the statistics tests
# compare against) in its own virtual environment under .local/. The test suite does not run
# this: the JSON is committed.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.local/venv-stats
if [[ ! -x "${VENV}/bin/python" ]]; then
  python3 -m venv "${VENV}"
fi
"${VENV}/bin/pip" install --quiet -r tests/reference/requirements.txt
"${VENV}/bin/python" tests/reference/stats_reference.py tests/reference/stats.json
