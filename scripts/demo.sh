#!/usr/bin/env bash
# Quick start, step 1: set up the environment if needed, then run the main job on built-in data.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$root/scripts/setup.sh"
exec "${THYROCAD_VENV:-$root/.venv}/bin/thyrocad" demo "$@"
