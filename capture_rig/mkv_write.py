"""Write recordings in the Azure Kinect recorder's Matroska layout with PyAV (no SDK).

For tests and measurements: a multi-camera take built from real frames, a recording with a fault
(no calibration, other modes, shifted timestamps), and the simulator's ``mkv/ID_c.mkv``. The
layout is what :mod:`capture_rig.mkv` reads and what the SDK's recorder writes: a ``COLOR`` track
(MJPEG), a ``DEPTH`` track (raw big-endian 16-bit, FourCC ``b16g``), ``K4A_*`` tags, and the
``calibration.json`` attachment; block timestamps since the start offset.

Two differences from the SDK's files: FFmpeg's Matroska muxer stores timestamps in milliseconds
(the SDK's recorder in microseconds), so a 160 us subordinate delay is below what these files
resolve; and the SDK's own playback does not open them (it wants its track headers). Our reader
(:mod:`capture_rig.mkv`) reads both.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import numpy as np

from capture_rig.mkv import COLOUR_RESOLUTIONS, DEPTH_RESOLUTIONS
from mmface4d_datasets.files import temporary_path


def write_kinect_mkv(
    path: str | os.PathLike,
    *,
    jpegs: list[bytes],
    depths: list[np.ndarray],
    timestamps_usec: list[int],
    calibration_json: str | None,
    colour_mode: str = "MJPG_1080P",
    depth_mode: str = "NFOV_UNBINNED",
    fps: int = 30,
    wired_sync_mode: str = "STANDALONE",
    subordinate_delay_usec: int = 0,
    serial: str = "000000000001",
    start_offset_usec: int | None = None,
    bitexact: bool = False,
) -> Path:
    """Write one camera's recording. ``timestamps_usec`` are the captures' device timestamps.
    ``bitexact``: no random segment id and no muxer version string (same input, same bytes)."""
    import av

    path = Path(path)
    if not (len(jpegs) == len(depths) == len(timestamps_usec)) or not jpegs:
        raise ValueError("jpegs, depths and timestamps_usec must have the same, non-zero length")
    width, height = COLOUR_RESOLUTIONS[colour_mode.split("_", 1)[1]]
    dw, dh = DEPTH_RESOLUTIONS[depth_mode]
    offset = int(timestamps_usec[0] if start_offset_usec is None else start_offset_usec)
    tmp = temporary_path(path)
    # raw video goes into Matroska as V_MS/VFW/FOURCC, as the SDK writes it
    options = {"allow_raw_vfw": "1"}
    container_options = {"fflags": "+bitexact"} if bitexact else {}
    with av.open(os.fspath(tmp), "w", format="matroska", options=options, container_options=container_options) as out:
        out.metadata.update(
            {
                "title": "Azure Kinect",
                "K4A_WIRED_SYNC_MODE": wired_sync_mode,
                "K4A_DEPTH_DELAY_NS": "0",
                "K4A_START_OFFSET_NS": str(offset * 1000),
                "K4A_DEVICE_SERIAL_NUMBER": serial,
                "K4A_COLOR_FIRMWARE_VERSION": "1.6.110",
                "K4A_DEPTH_FIRMWARE_VERSION": "1.6.79",
            }
        )
        if wired_sync_mode == "SUBORDINATE":
            out.metadata["K4A_SUBORDINATE_DELAY_NS"] = str(subordinate_delay_usec * 1000)
        colour = out.add_stream("mjpeg", rate=fps)
        colour.width, colour.height, colour.pix_fmt = width, height, "yuvj422p"
        colour.metadata.update({"title": "COLOR", "K4A_COLOR_MODE": colour_mode})
        depth = out.add_stream("rawvideo", rate=fps)
        depth.width, depth.height, depth.pix_fmt = dw, dh, "gray16be"
        depth.codec_tag = "b16g"
        depth.metadata.update({"title": "DEPTH", "K4A_DEPTH_MODE": depth_mode})
        if calibration_json is not None:
            attachment = out.add_attachment("calibration.json", "application/octet-stream", calibration_json.encode("utf-8"))
            attachment.metadata["K4A_CALIBRATION_FILE"] = "calibration.json"
        out.start_encoding()
        for jpeg, image, t in zip(jpegs, depths, timestamps_usec):
            for stream, data in ((colour, bytes(jpeg)), (depth, np.ascontiguousarray(image, dtype=">u2").tobytes())):
                packet = av.Packet(data)
                packet.stream = stream
                packet.pts = packet.dts = int(t - offset)
                packet.time_base = Fraction(1, 1_000_000)
                out.mux(packet)
    os.replace(tmp, path)
    return path


def first_capture(path: str | os.PathLike) -> tuple[bytes, np.ndarray, str]:
    """The first capture of a recording as (JPEG bytes, depth uint16 (H, W), calibration JSON)."""
    from capture_rig import mkv

    info = mkv.read_info(path)
    frame = next(mkv.iter_frames(path, info, decode_colour=False))
    return bytes(frame.colour), frame.depth, info.calibration_json
