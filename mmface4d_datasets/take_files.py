"""A take's per-camera image files: registered depth, colour video and 2-D landmarks.

DESIGN.md "Takes" and "Cameras" fix the layout; this module reads and writes it:

| file | content |
| --- | --- |
| ``ID_c.nut`` | depth registered to colour camera ``c``: FFV1 ``gray16le`` in NUT, uint16 millimetres along the colour camera's optical axis, 0 = no measurement, at the colour resolution |
| ``ID_c.mp4`` | colour video of camera ``c``: H.264 (``yuv420p``) at :data:`COLOUR_CRF` |
| ``ID_c.landmarks.npy`` | float32 (T, 68 or 98, 2) pixels, NaN where a point is missing |

Writers stream frame by frame (a 1080p take does not fit in memory as one array), write to a
temporary name beside the file and rename it when :meth:`close` completes; a writer left by an
exception (``with`` block) removes its temporary file. The rig's conversion (``capture_rig``)
writes these files, the reconstruction reads them; neither imports the other.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import numpy as np

from mmface4d_datasets.vocabulary import FPS
from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.files import temporary_path

#: Constant rate factor of the colour videos (libx264; 0 lossless .. 51; 18 is visually lossless).
COLOUR_CRF = 18
#: libx264 preset of the colour videos (speed against size; the quality is set by the CRF).
COLOUR_PRESET = "veryfast"
#: Landmark layouts accepted in ``ID_c.landmarks.npy``.
LANDMARK_COUNTS = (68, 98)


def depth_path(folder: str | os.PathLike, take_id: str, camera: int) -> Path:
    return Path(folder) / f"{take_id}_{camera}.nut"


def colour_path(folder: str | os.PathLike, take_id: str, camera: int) -> Path:
    return Path(folder) / f"{take_id}_{camera}.mp4"


def landmarks_path(folder: str | os.PathLike, take_id: str, camera: int) -> Path:
    return Path(folder) / f"{take_id}_{camera}.landmarks.npy"


class _VideoWriter:
    """One video stream written to a temporary name and renamed on :meth:`close`."""

    def __init__(self, path: str | os.PathLike, *, container_format: str, width: int, height: int, fps: int):
        if width <= 0 or height <= 0:
            raise ValueError(f"{path}: frame size must be positive, got {width}x{height}")
        self.path = Path(path)
        self.width, self.height, self.fps = int(width), int(height), int(fps)
        self.frames = 0
        self._tmp = temporary_path(self.path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        import av

        self._container = av.open(os.fspath(self._tmp), mode="w", format=container_format)
        self._stream = self._add_stream()

    def _add_stream(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def _frame(self, image: np.ndarray):  # pragma: no cover - overridden
        raise NotImplementedError

    def write(self, image: np.ndarray) -> None:
        frame = self._frame(image)
        frame.pts = self.frames  # frame k at k / fps, whatever clock a decoded frame came with
        frame.time_base = Fraction(1, self.fps)
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> Path:
        """Flush the encoder, close the file and rename it into place; returns the final path."""
        if self._container is None:
            return self.path
        try:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
            os.replace(self._tmp, self.path)
        finally:
            self.abort()
        return self.path

    def abort(self) -> None:
        """Drop the unfinished file (nothing is left under the final name)."""
        if self._container is not None:
            try:
                self._container.close()
            except Exception:  # the file is being thrown away; a second error would hide the first
                pass
            self._container = None
        if self._tmp.exists():
            self._tmp.unlink()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


class DepthVideoWriter(_VideoWriter):
    """``ID_c.nut``: uint16 millimetre images, lossless FFV1 ``gray16le`` in a NUT container."""

    def __init__(self, path, width: int, height: int, fps: int = FPS):
        super().__init__(path, container_format="nut", width=width, height=height, fps=fps)

    def _add_stream(self):
        stream = self._container.add_stream("ffv1", rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "gray16le"
        return stream

    def _frame(self, image):
        import av

        image = np.asarray(image)
        if image.shape != (self.height, self.width) or image.dtype != np.uint16:
            raise ValueError(f"{self.path}: a depth frame must be uint16 ({self.height}, {self.width}), got {image.dtype} {image.shape}")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(image, dtype="<u2"), format="gray16le")


class ColourVideoWriter(_VideoWriter):
    """``ID_c.mp4``: RGB uint8 images as H.264 ``yuv420p`` at ``crf`` (default :data:`COLOUR_CRF`)."""

    def __init__(self, path, width: int, height: int, fps: int = FPS, crf: int = COLOUR_CRF, preset: str = COLOUR_PRESET, threads: int = 0):
        if width % 2 or height % 2:
            raise ValueError(f"{path}: yuv420p needs an even frame size, got {width}x{height}")
        self.crf, self.preset, self.threads = int(crf), preset, int(threads)
        super().__init__(path, container_format="mp4", width=width, height=height, fps=fps)

    def _add_stream(self):
        stream = self._container.add_stream("libx264", rate=self.fps)
        stream.width, stream.height, stream.pix_fmt = self.width, self.height, "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": self.preset}
        if self.threads:
            stream.codec_context.thread_count = self.threads
        return stream

    def _frame(self, image):
        import av

        if isinstance(image, av.VideoFrame):
            if (image.width, image.height) != (self.width, self.height):
                raise ValueError(f"{self.path}: frame is {image.width}x{image.height}, expected {self.width}x{self.height}")
            if image.format.name == "yuv420p":
                return image
            # MJPG frames are full range (yuvj*); H.264 yuv420p is limited range: convert the range
            # too, or dark and bright values come out stretched (measured: 20 -> 5, 220 -> 238)
            full = image.format.name.startswith("yuvj") or getattr(image, "color_range", 0) == 2
            return image.reformat(format="yuv420p", src_color_range="JPEG" if full else "MPEG", dst_color_range="MPEG")
        image = np.asarray(image)
        if image.shape != (self.height, self.width, 3) or image.dtype != np.uint8:
            raise ValueError(f"{self.path}: a colour frame must be uint8 ({self.height}, {self.width}, 3), got {image.dtype} {image.shape}")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")


def _open_video(path: Path):
    import av

    if not path.is_file():
        raise FormatError(f"{path}: no such file")
    try:
        container = av.open(os.fspath(path))
    except (OSError, ValueError) as exc:  # PyAV's errors subclass these
        raise FormatError(f"{path}: not a readable video ({exc})") from None
    if not container.streams.video:
        container.close()
        raise FormatError(f"{path}: holds no video stream")
    return container


def _iter_video(path: Path, what: str, pixel_format: str, codec: tuple[str, str] | None = None) -> Iterator[np.ndarray]:
    container = _open_video(path)
    try:
        stream = container.streams.video[0]
        found = (stream.codec_context.name, stream.codec_context.pix_fmt)
        if codec is not None and found != codec:
            raise FormatError(f"{path}: a {what} video must be {codec[0].upper()} {codec[1]}, found {found[0]} {found[1]}")
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format=pixel_format)
        except (OSError, ValueError) as exc:
            raise FormatError(f"{path}: damaged {what} video ({exc})") from None
    finally:
        container.close()


def _read_all(frames: Iterator[np.ndarray], path, what: str) -> np.ndarray:
    frames = list(frames)
    if not frames:
        raise FormatError(f"{path}: the {what} video holds no frame")
    return np.stack(frames)


def iter_depth_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of an ``ID_c.nut`` depth video, one uint16 (H, W) millimetre image at a time."""
    return _iter_video(Path(path), "depth", "gray16le", ("ffv1", "gray16le"))


def read_depth_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of an ``ID_c.nut`` depth video as uint16 (T, H, W) millimetres (0 = no measurement)."""
    return _read_all(iter_depth_video(path), path, "depth").astype(np.uint16, copy=False)


def iter_colour_video(path: str | os.PathLike) -> Iterator[np.ndarray]:
    """The frames of an ``ID_c.mp4`` colour video, one RGB uint8 (H, W, 3) image at a time."""
    return _iter_video(Path(path), "colour", "rgb24")


def read_colour_video(path: str | os.PathLike) -> np.ndarray:
    """All frames of an ``ID_c.mp4`` colour video as RGB uint8 (T, H, W, 3)."""
    return _read_all(iter_colour_video(path), path, "colour")


def write_depth_video(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS) -> Path:
    """Write uint16 (T, H, W) millimetre images as ``ID_c.nut`` (atomic)."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or frames.shape[0] < 1:
        raise ValueError(f"{path}: depth frames must be (T>0, H, W), got {frames.shape}")
    with DepthVideoWriter(path, frames.shape[2], frames.shape[1], fps) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def write_colour_video(path: str | os.PathLike, frames: np.ndarray, fps: int = FPS, crf: int = COLOUR_CRF) -> Path:
    """Write RGB uint8 (T, H, W, 3) images as ``ID_c.mp4`` H.264 (atomic)."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[0] < 1 or frames.shape[3] != 3:
        raise ValueError(f"{path}: colour frames must be (T>0, H, W, 3), got {frames.shape}")
    with ColourVideoWriter(path, frames.shape[2], frames.shape[1], fps, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return Path(path)


def write_landmarks(path: str | os.PathLike, landmarks: np.ndarray) -> Path:
    """Write ``ID_c.landmarks.npy``: float32 (T, 68 or 98, 2) pixels, NaN where missing (atomic)."""
    from mmface4d_datasets.files import atomic_write_bytes
    import io

    landmarks = np.asarray(landmarks, dtype=np.float32)
    _check_landmarks(landmarks, Path(path))
    buffer = io.BytesIO()
    np.save(buffer, landmarks, allow_pickle=False)
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)


def read_landmarks(path: str | os.PathLike) -> np.ndarray:
    """Read ``ID_c.landmarks.npy`` (no pickles), checked to be float32 (T, 68 or 98, 2)."""
    from mmface4d_datasets.files import read_npy

    path = Path(path)
    try:
        landmarks = read_npy(path)  # the header's shape is checked against the file's size before allocating
    except FormatError as exc:
        raise FormatError(f"{exc} (a .npy landmark file)") from None
    except (OSError, ValueError) as exc:
        raise FormatError(f"{path}: not a readable .npy landmark file ({exc})") from None
    if landmarks.dtype != np.float32:
        raise FormatError(f"{path}: landmarks must be float32, found {landmarks.dtype}")
    _check_landmarks(landmarks, path)
    return landmarks


def _check_landmarks(landmarks: np.ndarray, path: Path) -> None:
    if landmarks.ndim != 3 or landmarks.shape[1] not in LANDMARK_COUNTS or landmarks.shape[2] != 2:
        raise FormatError(f"{path}: landmarks must be (T, 68 or 98, 2), found {landmarks.shape}")
    if np.isinf(landmarks).any():
        raise FormatError(f"{path}: landmarks hold infinite values (NaN marks a missing point)")
