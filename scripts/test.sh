#!/usr/bin/env bash
# Quick start, step 2: set up the environment (Python packages, plus Chromium and Orthanc from
# Debian for the browser and PACS tests) if needed, then run lint and the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/ci_services.sh"   # Chromium and Orthanc for the browser and PACS tests
venv="${THYROCAD_VENV:-$root/.venv}"
cd "$root"
"$venv/bin/ruff" check src tests benchmarks
exec "$venv/bin/python" -m pytest "$@"
