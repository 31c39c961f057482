"""Errors of the capture rig a user can act on (each names the file and the problem).

Only the standard library is imported here: the recorder, which runs in its own environment
without the main dependencies, raises these too. They subclass the core's error classes when the
core is importable (it always is in the main environment), so that ``mmface4d`` prints them
without a traceback and exits 2.
"""

from __future__ import annotations

try:  # the core's errors module imports nothing beyond the standard library
    from mmface4d_datasets.errors import FormatError, MMFace4DError
except ImportError:  # pragma: no cover - a recording environment without the package installed

    class MMFace4DError(Exception):
        pass

    class FormatError(MMFace4DError, ValueError):
        pass


class RigError(MMFace4DError):
    """Base of the capture rig's errors."""


class RecordingError(RigError, FormatError):
    """An Azure Kinect recording (MKV) cannot be used: names the file and what is wrong."""


class NotKinectRecording(RecordingError):
    """The file is not an Azure Kinect recording (not Matroska, or no COLOR / DEPTH track)."""


class TruncatedRecording(RecordingError):
    """The recording ends inside a frame, or a frame cannot be decoded."""


class MissingCalibration(RecordingError):
    """The recording has no ``calibration.json`` attachment (or it cannot be parsed)."""


class ModeMismatch(RigError):
    """The cameras of one take were recorded in different modes (colour, depth or frame rate)."""


class TimestampMismatch(RigError):
    """The cameras' device timestamps do not line up on one frame grid (not wired-synchronised?)."""


class AudioError(RigError, FormatError):
    """The take's WAV is not 16 kHz mono, or cannot be read."""


class DamagedTake(RigError):
    """More of a take's frames are dropped or damaged than the limit allows (``--allow-damaged`` keeps it)."""


class TakeExists(RigError):
    """The take folder already exists (conversion never overwrites a finished take)."""


class ConsentError(RigError):
    """No valid consent record for the actor, or the actor has withdrawn."""


class DeviceError(RigError):
    """A camera or the microphone failed: missing, disconnected, dropped frames, no sync cable."""


class LandmarkError(RigError, FormatError):
    """A take's landmark file does not fit its recording, or a camera has none where landmarks are required."""
