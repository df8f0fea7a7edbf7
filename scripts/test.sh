#!/usr/bin/env bash
# The README test command: set up .venv (with test tools) and run the whole suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k bags -x`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_venv.sh --test
export MALLOC_MMAP_THRESHOLD_=1000000000 MALLOC_TRIM_THRESHOLD_=1000000000
# ROS 2 tests keep DDS on loopback themselves; these make sure nothing else leaves the machine either.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST ROS_LOCALHOST_ONLY=1
exec .venv/bin/python -m pytest "$@"
