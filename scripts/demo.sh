#!/usr/bin/env bash
# The README demo command: set up .venv and run the main job on the built-in procedural scene.
# Extra arguments go to `nerf-loc demo` (e.g. `bash scripts/demo.sh --frames 60`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh
export MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000
exec .venv/bin/nerf-loc demo "$@"
