"""Read Azure Kinect recordings (Matroska as the SDK's recorder writes them) with PyAV.

What such a file holds (checked on ``../shared/fixtures/k4a_recording/recording.mkv``):

- container tags ``K4A_WIRED_SYNC_MODE``, ``K4A_DEPTH_DELAY_NS``, ``K4A_SUBORDINATE_DELAY_NS``
  (subordinates), ``K4A_START_OFFSET_NS``, ``K4A_DEVICE_SERIAL_NUMBER``, ``K4A_*_FIRMWARE_VERSION``;
- a ``COLOR`` track (``K4A_COLOR_MODE`` e.g. ``MJPG_1080P``; MJPEG), a ``DEPTH`` track
  (``K4A_DEPTH_MODE`` e.g. ``NFOV_UNBINNED``; raw 16-bit, FourCC ``b16g``, which FFmpeg decodes as
  ``gray16be`` to the millimetres the SDK hands out), an ``IR`` track and an ``IMU`` track, which
  are ignored here;
- the ``calibration.json`` attachment (the device's factory calibration).

Block timestamps are microseconds since the recording's start; a frame's DEVICE timestamp (what
the SDK reports and what synchronised cameras share) is the block timestamp plus
``K4A_START_OFFSET_NS``. The SDK is not needed.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from capture_rig.errors import MissingCalibration, NotKinectRecording, TruncatedRecording

#: Frame size of each Azure Kinect colour mode (``K4A_COLOR_MODE`` is ``FORMAT_RESOLUTION``).
COLOUR_RESOLUTIONS = {
    "720P": (1280, 720),
    "1080P": (1920, 1080),
    "1440P": (2560, 1440),
    "1536P": (2048, 1536),
    "2160P": (3840, 2160),
    "3072P": (4096, 3072),
}
#: Frame size of each depth mode.
DEPTH_RESOLUTIONS = {
    "NFOV_2X2BINNED": (320, 288),
    "NFOV_UNBINNED": (640, 576),
    "WFOV_2X2BINNED": (512, 512),
    "WFOV_UNBINNED": (1024, 1024),
    "PASSIVE_IR": (1024, 1024),
}


@dataclass
class Frame:
    """One capture of one camera: colour and depth taken together.

    ``timestamp_usec`` is the colour image's device timestamp, ``depth_timestamp_usec`` the depth
    image's (later by the configured depth delay). ``colour`` is a decoded ``av.VideoFrame`` (or
    None when the capture has no colour image), ``depth`` uint16 (H, W) millimetres (or None).
    """

    index: int
    timestamp_usec: int
    depth_timestamp_usec: int | None
    colour: object | None
    depth: np.ndarray | None


@dataclass
class RecordingInfo:
    """What the header of a recording says (nothing here needs the frames to be read)."""

    path: Path
    tags: dict[str, str]
    colour_mode: str
    depth_mode: str
    colour_size: tuple[int, int]
    depth_size: tuple[int, int]
    fps: float
    calibration_json: str
    wired_sync_mode: str
    depth_delay_usec: int
    subordinate_delay_usec: int
    start_offset_usec: int
    serial_number: str
    firmware: dict[str, str] = field(default_factory=dict)

    @property
    def mode(self) -> tuple[str, str, float]:
        """What must agree between the cameras of one take."""
        return self.colour_mode, self.depth_mode, self.fps

    def as_dict(self) -> dict:
        """The header as JSON-ready fields (for ``ID.meta.json``)."""
        return {
            "serial_number": self.serial_number,
            "colour_mode": self.colour_mode,
            "depth_mode": self.depth_mode,
            "fps": self.fps,
            "wired_sync_mode": self.wired_sync_mode,
            "depth_delay_usec": self.depth_delay_usec,
            "subordinate_delay_usec": self.subordinate_delay_usec,
            "start_offset_usec": self.start_offset_usec,
            "firmware": dict(self.firmware),
            "recording": self.path.name,
        }


def _track(container, title: str):
    for stream in container.streams:
        if stream.type == "video" and stream.metadata.get("title") == title:
            return stream
    return None


def _tag_int(tags: dict, name: str, path: Path, default: int = 0) -> int:
    value = tags.get(name)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise NotKinectRecording(f"{path}: tag {name} is {value!r}, expected an integer") from None


def _read_vint(data: bytes, offset: int, *, keep_marker: bool) -> tuple[int, int]:
    """An EBML variable-length integer at ``offset``: (value, length); value -1 for "unknown size"."""
    first = data[offset]
    length = 1
    while length <= 8 and not first & (0x80 >> (length - 1)):
        length += 1
    if length > 8 or offset + length > len(data):
        raise ValueError("bad EBML number")
    value = first if keep_marker else first & (0xFF >> length)
    for byte in data[offset + 1 : offset + length]:
        value = (value << 8) | byte
    if not keep_marker and value == (1 << (7 * length)) - 1:
        return -1, length
    return value, length


def check_complete(path: Path) -> None:
    """Raise :class:`TruncatedRecording` when the file is shorter than its Matroska segment says.

    The Azure Kinect recorder writes the segment's size when it closes the file; a copy cut off
    (or a recording whose writer died) is shorter than that. A segment of unknown size is not
    checked here (a damaged frame is then caught while reading it).
    """
    size = path.stat().st_size
    with open(path, "rb") as handle:
        head = handle.read(4096)
    if not head.startswith(b"\x1a\x45\xdf\xa3"):
        return  # not Matroska at all: PyAV's own check names the problem
    try:
        ebml_id, n = _read_vint(head, 0, keep_marker=True)
        if ebml_id != 0x1A45DFA3:
            return  # not Matroska at all: PyAV's own check names the problem
        header_size, m = _read_vint(head, n, keep_marker=False)
        offset = n + m + header_size
        segment_id, n = _read_vint(head, offset, keep_marker=True)
        if segment_id != 0x18538067:
            return
        segment_size, m = _read_vint(head, offset + n, keep_marker=False)
    except (ValueError, IndexError):
        raise TruncatedRecording(f"{path}: the Matroska header is cut off ({size} bytes)") from None
    if segment_size >= 0 and offset + n + m + segment_size > size:
        raise TruncatedRecording(
            f"{path}: the file is {size} bytes but its Matroska segment declares "
            f"{offset + n + m + segment_size}; the recording was cut off (copy it again, "
            "or re-record the take)"
        )
    check_elements(path, offset + n + m, size)


_CLUSTER = 0x1F43B675
#: Elements that end a Cluster of unknown size (the Segment's own children, DESIGN: Matroska's level 1).
_LEVEL_1 = {0x114D9B74, 0x1549A966, 0x1654AE6B, _CLUSTER, 0x1C53BB6B, 0x1941A469, 0x1043A770, 0x1254C367}


def check_elements(path: Path, start: int, size: int) -> None:
    """Walk the Segment's elements from byte ``start`` (and the blocks of every Cluster) reading only their
    headers, and raise :class:`TruncatedRecording` for one whose declared size runs past the file's end (a
    block cut off: a live recording's unknown-size Segment has no total to compare with, and the demuxer
    drops such a block silently). Bounded: it seeks past payloads, never allocates a declared size."""

    def header(handle, at: int, limit: int):
        handle.seek(at)
        head = handle.read(12)
        try:
            element, n = _read_vint(head, 0, keep_marker=True)
            length, m = _read_vint(head, n, keep_marker=False)
        except (ValueError, IndexError):
            raise TruncatedRecording(f"{path}: the file ends inside an element header at byte {at} (cut off?)") from None
        if length >= 0 and at + n + m + length > limit:
            what = "a Cluster" if element == _CLUSTER else ("a block" if element in (0xA3, 0xA0) else f"element 0x{element:X}")
            raise TruncatedRecording(
                f"{path}: {what} at byte {at} declares {length} bytes, the file ends {limit - at - n - m} bytes into it "
                "(the recording was cut off: copy it again, or re-record the take)"
            )
        return element, n + m, length

    with open(path, "rb") as handle:
        at = start
        while at < size:
            if size - at < 2:
                break  # a stray byte of padding
            element, head, length = header(handle, at, size)
            if element == _CLUSTER:
                end = size if length < 0 else at + head + length
                child = at + head
                while child < end:
                    handle.seek(child)
                    if length < 0 and size - child >= 4:
                        peek = handle.read(4)
                        if int.from_bytes(peek, "big") in _LEVEL_1:
                            break
                    inner, inner_head, inner_length = header(handle, child, end)
                    if inner_length < 0:
                        return  # an unknown-size child: nothing more can be walked
                    child += inner_head + inner_length
                at = child if length < 0 else end
                continue
            if length < 0:
                return  # another element of unknown size: nothing more can be walked
            at += head + length


def _open(path: Path):
    import av

    if not path.is_file():
        raise NotKinectRecording(f"{path}: no such file")
    check_complete(path)
    try:
        container = av.open(os.fspath(path))
    except (OSError, ValueError, av.error.FFmpegError) as exc:
        raise NotKinectRecording(f"{path}: not a Matroska file PyAV can open ({exc})") from None
    if "matroska" not in container.format.name:
        container.close()
        raise NotKinectRecording(f"{path}: a {container.format.name} file, expected Matroska (.mkv) from the Azure Kinect recorder")
    return container


def read_info(path: str | os.PathLike) -> RecordingInfo:
    """The header of the Azure Kinect recording at ``path``.

    Raises :class:`NotKinectRecording` (not Matroska, no COLOR or DEPTH track, unknown mode) and
    :class:`MissingCalibration` (no ``calibration.json`` attachment, or not JSON).
    """
    path = Path(path)
    container = _open(path)
    try:
        return _info(container, path)
    finally:
        container.close()


def _info(container, path: Path) -> RecordingInfo:
    tags = {str(k): str(v) for k, v in container.metadata.items()}
    colour, depth = _track(container, "COLOR"), _track(container, "DEPTH")
    if colour is None or depth is None:
        missing = " and ".join(name for name, s in (("COLOR", colour), ("DEPTH", depth)) if s is None)
        raise NotKinectRecording(
            f"{path}: no {missing} track; not an Azure Kinect recording with colour and depth "
            f"(tracks: {[s.metadata.get('title', s.type) for s in container.streams]})"
        )
    colour_mode = colour.metadata.get("K4A_COLOR_MODE", "")
    depth_mode = depth.metadata.get("K4A_DEPTH_MODE", "")
    resolution = colour_mode.split("_", 1)[-1]
    if resolution not in COLOUR_RESOLUTIONS or depth_mode not in DEPTH_RESOLUTIONS:
        raise NotKinectRecording(f"{path}: unknown Azure Kinect modes (K4A_COLOR_MODE {colour_mode!r}, K4A_DEPTH_MODE {depth_mode!r})")
    colour_size, depth_size = COLOUR_RESOLUTIONS[resolution], DEPTH_RESOLUTIONS[depth_mode]
    found = (depth.codec_context.width, depth.codec_context.height)
    if found != depth_size:
        raise NotKinectRecording(f"{path}: DEPTH track is {found[0]}x{found[1]}, but {depth_mode} is {depth_size[0]}x{depth_size[1]}")
    calibration = None
    for stream in container.streams:
        if stream.type == "attachment" and (
            stream.name == "calibration.json" or stream.metadata.get("K4A_CALIBRATION_FILE") == "calibration.json"
        ):
            calibration = bytes(stream.data).decode("utf-8", errors="replace")
    if calibration is None:
        raise MissingCalibration(
            f"{path}: no calibration.json attachment (the Azure Kinect recorder always writes one; was the file re-muxed?)"
        )
    try:
        json.loads(calibration)["CalibrationInformation"]["Cameras"]
    except (ValueError, KeyError, TypeError):
        raise MissingCalibration(
            f"{path}: the calibration.json attachment is not the SDK's calibration JSON (no CalibrationInformation.Cameras)"
        ) from None
    rate = colour.average_rate or colour.guessed_rate
    if not rate:
        raise NotKinectRecording(f"{path}: the COLOR track states no frame rate")
    firmware = {
        name[len("K4A_") : -len("_FIRMWARE_VERSION")].lower(): value
        for name, value in tags.items()
        if name.startswith("K4A_") and name.endswith("_FIRMWARE_VERSION")
    }
    return RecordingInfo(
        path=path,
        tags=tags,
        colour_mode=colour_mode,
        depth_mode=depth_mode,
        colour_size=colour_size,
        depth_size=depth_size,
        fps=float(rate),
        calibration_json=calibration,
        wired_sync_mode=tags.get("K4A_WIRED_SYNC_MODE", "STANDALONE"),
        depth_delay_usec=_tag_int(tags, "K4A_DEPTH_DELAY_NS", path) // 1000,
        subordinate_delay_usec=_tag_int(tags, "K4A_SUBORDINATE_DELAY_NS", path) // 1000,
        start_offset_usec=_tag_int(tags, "K4A_START_OFFSET_NS", path) // 1000,
        serial_number=tags.get("K4A_DEVICE_SERIAL_NUMBER", ""),
        firmware=firmware,
    )


def _usec(packet) -> int:
    return int(round(float(packet.pts * packet.time_base) * 1e6))


def iter_frames(
    path: str | os.PathLike, info: RecordingInfo | None = None, *, decode_colour: bool = True, colour_threads: int = 0
) -> Iterator[Frame]:
    """The captures of a recording in file order, colour decoded (``av.VideoFrame``) and depth as uint16 mm.

    A colour image and a depth image belong to one capture when the depth's timestamp is the
    colour's plus the recording's depth delay (within a quarter frame). Raises
    :class:`TruncatedRecording` when a depth block is shorter than a frame or an image cannot be
    decoded (a file cut off while it was written).
    """
    import av

    path = Path(path)
    container = _open(path)
    try:
        info = info or _info(container, path)
        colour, depth = _track(container, "COLOR"), _track(container, "DEPTH")
        if colour_threads:
            colour.codec_context.thread_count = colour_threads
        width, height = info.depth_size
        expected = width * height * 2
        tolerance = int(0.25e6 / info.fps)
        pending_colour: list[tuple[int, object]] = []
        pending_depth: list[tuple[int, np.ndarray]] = []
        index = 0

        def decode_colour_packet(packet):
            if not decode_colour:
                return packet
            try:
                frames = colour.codec_context.decode(packet)
            except (av.error.FFmpegError, ValueError) as exc:
                raise TruncatedRecording(f"{path}: colour frame at {_usec(packet)} us cannot be decoded ({exc})") from None
            if not frames:
                raise TruncatedRecording(f"{path}: colour frame at {_usec(packet)} us decodes to nothing")
            return frames[-1]

        def emit():
            nonlocal index
            # Pair the oldest colour with the depth taken `depth_delay` after it; unpaired images
            # (synchronized_images_only off, or a dropped image) become captures of their own.
            while pending_colour and pending_depth:
                t_c, c = pending_colour[0]
                t_d, d = pending_depth[0]
                gap = t_d - t_c - info.depth_delay_usec
                if abs(gap) <= tolerance:
                    pending_colour.pop(0), pending_depth.pop(0)
                    yield Frame(index, t_c, t_d, decode_colour_packet(c), d)
                elif gap > 0:
                    pending_colour.pop(0)
                    yield Frame(index, t_c, None, decode_colour_packet(c), None)
                else:
                    pending_depth.pop(0)
                    yield Frame(index, t_d - info.depth_delay_usec, t_d, None, d)
                index += 1

        try:
            for packet in container.demux(colour, depth):
                if packet.pts is None:
                    continue  # the demuxer's flush packets (no data, no time)
                t = _usec(packet) + info.start_offset_usec
                if packet.stream.index == depth.index:
                    if packet.size != expected:
                        raise TruncatedRecording(
                            f"{path}: depth block at {t} us holds {packet.size} bytes, a "
                            f"{width}x{height} frame needs {expected} (file cut off?)"
                        )
                    image = np.frombuffer(bytes(packet), dtype=">u2").reshape(height, width).astype(np.uint16)
                    pending_depth.append((t, image))
                else:
                    if packet.size == 0:
                        raise TruncatedRecording(f"{path}: colour block at {t} us holds no bytes (file damaged?)")
                    pending_colour.append((t, packet))
                yield from emit()
        except av.error.FFmpegError as exc:
            raise TruncatedRecording(f"{path}: the file cannot be read to its end ({exc})") from None
        for t_c, c in pending_colour:
            yield Frame(index, t_c, None, decode_colour_packet(c), None)
            index += 1
        for t_d, d in pending_depth:
            yield Frame(index, t_d - info.depth_delay_usec, t_d, None, d)
            index += 1
    finally:
        container.close()
