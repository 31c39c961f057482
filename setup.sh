#!/usr/bin/env bash
# Creates .venv at the repository root and installs the package with every dependency.
# torch is pinned to 2.13.0, the CPU build; it is installed first so nothing pulls a CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[dev,hub,viz]"
./setup-rig.sh
