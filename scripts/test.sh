#!/usr/bin/env bash
# Quick start, step 2: set up the environment if needed, then run lint and the whole test suite.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
venv="${THYROCAD_VENV:-$root/.venv}"
cd "$root"
"$venv/bin/ruff" check src tests benchmarks
exec "$venv/bin/python" -m pytest "$@"
