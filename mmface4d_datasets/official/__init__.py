"""Readers and writers of the MMFace4D authors' release formats, one module per format.

The formats (DESIGN.md, "Takes" and "The `.nut` mesh encoding"; the fixture README):

- mesh sequence (:mod:`.mesh`): three FFV1 ``gray16le`` videos in NUT containers, ``{prefix}_0.nut`` (x),
  ``{prefix}_1.nut`` (y), ``{prefix}_2.nut`` (z). Each frame is an S x S image with
  ``S = ceil(sqrt(N + 4))``; flattened, pixels 0-1 hold the frame's float32 minimum and pixels 2-3
  its float32 maximum (the float's four bytes as two little-endian uint16), pixels 4 .. 4+N-1 the
  quantised coordinates ``q``. Decoding, every operand float32:
  ``v = q.astype(float32) / 65536 * (max - min) + min``;
- speech (:mod:`.audio`): ``ID.wav``, 16 kHz mono (the authors' files hold 32-bit float samples);
- calibration (:mod:`.calibration`): ``ID_c.json`` per Azure Kinect camera, ``intrinsic_matrix`` column-major;
- landmarks (:mod:`.landmarks`): ``ID_c.pkl``, a pickled float64 numpy array (T, 98, 2) in pixels, read through
  the restricted unpickler of :mod:`mmface4d_datasets.safe_pickle`; our rig may write ``ID_c.landmarks.npy``;
- takes (:mod:`.takes`): which files make a take, found in a folder tree (``Take``, ``find_takes``,
  ``scan_takes``, ``read_take``).

Every public name is re-exported here: ``from mmface4d_datasets.official import read_mesh_sequence``.
Videos are decoded with PyAV (whose wheels carry FFmpeg), never with a system binary.
Every malformed input raises :class:`~mmface4d_datasets.errors.FormatError` naming the file.
Only numpy and the standard library are imported here (PyAV and soundfile on use): the recorder's
environment (numpy < 2, no other dependency of the package) writes its WAVs through this package.
"""

from __future__ import annotations

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.official.audio import float_wav_bytes, read_audio, write_audio
from mmface4d_datasets.official.calibration import CALIBRATION_KEYS, read_calibration, read_intrinsics
from mmface4d_datasets.official.landmarks import (
    LANDMARK_FRAME_TOLERANCE,
    LANDMARK_POINTS,
    check_landmarks_agree,
    read_landmarks,
)
from mmface4d_datasets.official.mesh import (
    AXES,
    HEADER_PIXELS,
    QUANTISATION_PADDING,
    ChecksumError,
    check_slice_crcs,
    dequantise,
    frame_side,
    mesh_axis_paths,
    quantise,
    read_mesh_sequence,
    read_quantised_axis,
    write_mesh_sequence,
    write_quantised_axis,
)
from mmface4d_datasets.official.takes import Take, TakeScan, find_takes, read_take, scan_takes
from mmface4d_datasets.vocabulary import FPS, SAMPLE_RATE

__all__ = [
    "FPS",
    "SAMPLE_RATE",
    "FormatError",
    # mesh
    "AXES",
    "HEADER_PIXELS",
    "QUANTISATION_PADDING",
    "ChecksumError",
    "check_slice_crcs",
    "dequantise",
    "frame_side",
    "mesh_axis_paths",
    "quantise",
    "read_mesh_sequence",
    "read_quantised_axis",
    "write_mesh_sequence",
    "write_quantised_axis",
    # audio
    "float_wav_bytes",
    "read_audio",
    "write_audio",
    # calibration
    "CALIBRATION_KEYS",
    "read_calibration",
    "read_intrinsics",
    # landmarks
    "LANDMARK_FRAME_TOLERANCE",
    "LANDMARK_POINTS",
    "check_landmarks_agree",
    "read_landmarks",
    # takes
    "Take",
    "TakeScan",
    "find_takes",
    "read_take",
    "scan_takes",
]
