#!/usr/bin/env bash
# Quick start, step 2: set up the environment (Python packages, plus Chromium and Orthanc from
# Debian for the browser and PACS tests) if needed, then run lint and the whole test suite.
# The suite runs in THYROCAD_TEST_WORKERS pytest-xdist processes (default: the CPU count, at
# most 4), one test file per worker at a time so that each file's fixtures are built once;
# `-n 0` after it runs everything in this process.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
bash "$root/scripts/ci_services.sh"   # Chromium and Orthanc for the browser and PACS tests
venv="${THYROCAD_VENV:-$root/.venv}"
cd "$root"
"$venv/bin/ruff" check src tests benchmarks
workers="${THYROCAD_TEST_WORKERS:-$(( $(nproc) < 4 ? $(nproc) : 4 ))}"
exec "$venv/bin/python" -m pytest -n "$workers" --dist loadfile "$@"
