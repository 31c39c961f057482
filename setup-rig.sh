#!/usr/bin/env bash
# Creates .venv-rig, the recording environment of `mmface4d rig record`: numpy < 2 (pyk4a-bundle,
# the pyk4a wheel with the Azure Kinect SDK inside, imports only with numpy < 2), sounddevice for
# the microphone (it needs the PortAudio library: Debian/Ubuntu `apt-get install libportaudio2`),
# pytest for the recorder's tests, and this package WITHOUT its main dependencies (the recorder
# imports only numpy, pyk4a, sounddevice and the standard library).
set -euo pipefail
cd "$(dirname "$0")"
PY=${PYTHON:-python3}
if [ ! -x .venv-rig/bin/python ]; then
  "$PY" -m venv .venv-rig
fi
.venv-rig/bin/python -m pip install --quiet --upgrade pip
.venv-rig/bin/python -m pip install --quiet "numpy<2" "pyk4a-bundle>=1.5,<1.6" "sounddevice>=0.4" "pytest>=8"
.venv-rig/bin/python -m pip install --quiet --no-deps -e .
