#!/usr/bin/env bash
# Create (or update) ./.venv with nerf_loc_ros, its dependencies and, with `--test`, the test tools.
#
# torch: installs TORCH_VERSION (default 2.13.0). On the project's machines pip finds a local CPU
# wheel; elsewhere set TORCH_INDEX_URL to PyTorch's CPU wheel index so that a CPU-only machine never
# downloads a multi-GB CUDA build. Set NERF_LOC_PYTHON to choose the interpreter (>= 3.10).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${NERF_LOC_PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
extras=""
[ "${1:-}" = "--test" ] && extras="[test]"

"$PY" - <<'PYCHECK'
import sys
if sys.version_info < (3, 10):
    sys.exit(f"nerf_loc_ros needs Python >= 3.10, found {sys.version.split()[0]}")
PYCHECK

# Debian packages some wheels need at run time (installed only when missing and we may install).
need_apt=()
ldconfig -p 2>/dev/null | grep 'libusb-1.0.so.0' >/dev/null || need_apt+=(libusb-1.0-0)      # Open3D
ldconfig -p 2>/dev/null | grep 'libgomp.so.1' >/dev/null || need_apt+=(libgomp1)             # OpenMP (torch, Open3D)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[setup] apt-get install ${need_apt[*]}"
    (apt-get install -y -qq "${need_apt[@]}" >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq "${need_apt[@]}"; }) >/dev/null
  else
    echo "[setup] warning: missing system libraries ${need_apt[*]} (install them with apt-get)" >&2
  fi
fi

if [ ! -x .venv/bin/python ]; then
  echo "[setup] creating .venv with $("$PY" --version)"
  "$PY" -m venv .venv
fi
pip=(.venv/bin/python -m pip --disable-pip-version-check -q)

if ! .venv/bin/python -c "import torch" 2>/dev/null; then
  echo "[setup] installing torch==$TORCH_VERSION"
  if [ -n "${TORCH_INDEX_URL:-}" ]; then
    "${pip[@]}" install "torch==$TORCH_VERSION" --index-url "$TORCH_INDEX_URL"
  else
    "${pip[@]}" install "torch==$TORCH_VERSION" 2>&1 | { grep -v "^WARNING: Location" || true; }
  fi
fi

echo "[setup] installing nerf_loc_ros$extras (editable)"
"${pip[@]}" install -e ".$extras" 2>&1 | { grep -v "^WARNING: Location" || true; }
.venv/bin/python -c "import nerf_loc_ros, torch; print(f'[setup] ok: torch {torch.__version__}, cuda={torch.cuda.is_available()}')"
