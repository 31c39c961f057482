"""Mesh sequences to pictures: sources (release row, take folder, PLY folder), a fixed framing, and
H.264 MP4 with the take's audio (AAC) through PyAV, or one PNG still.

Used by ``mmface4d render`` (render/cli.py) and by ``mmface4d bench render`` (benchmark), which
draws its own panels through :func:`encode_video`.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmface4d_datasets.vocabulary import FPS
from mmface4d_datasets.camera import Camera
from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.files import temporary_path
from mmface4d_datasets.render.raster import RenderError, check_mesh, rasterize
from mmface4d_datasets.render.shading import shade, vertex_normals
from mmface4d_datasets.render.views import framing_camera

#: Video and audio may differ by this much (seconds) before a warning.
AUDIO_SLACK = 0.1
#: Named backgrounds; any "R,G,B" or "#rrggbb" works too.
BACKGROUNDS = {"white": (255, 255, 255), "black": (0, 0, 0), "grey": (128, 128, 128), "gray": (128, 128, 128)}


class AudioLengthWarning(UserWarning):
    """The audio is not as long as the frames imply; the video is made from what is there."""


@dataclass
class Sequence:
    """What a picture is made of: ``vertices`` (T, N, 3) metres, ``triangles`` (F, 3), ``audio``
    (samples float32, rate) or None, ``fps``, ``name`` (for messages), ``facing`` ("-z": camera 1's
    frame, y down, as takes; "+z": the canonical head frame, y up, as release rows) and the take's
    calibration files by camera index (may be empty)."""

    vertices: np.ndarray
    triangles: np.ndarray
    audio: tuple | None
    fps: float = FPS
    name: str = "sequence"
    facing: str = "-z"
    calibrations: dict = field(default_factory=dict)


# ------------------------------------------------------------------------ sources
def _find_faces(folder: Path) -> Path | None:
    for base in (folder, *folder.parents[:2]):
        for name in ("bfm_faces.pkl", "faces.npy", "BFM/facemodel_info.mat"):
            if (base / name).is_file():
                return base / name
    return None


def load_take(folder, faces=None) -> Sequence:
    """A take folder in the authors' layout: meshes ``*_filt_{0,1,2}.nut``, ``ID.wav``, ``ID_c.json``.
    Triangles from ``faces`` (.npy / bfm_faces.pkl / facemodel_info.mat), else a ``bfm_faces.pkl`` /
    ``faces.npy`` / ``BFM/facemodel_info.mat`` in the folder or the two above it."""
    from mmface4d_datasets.export import load_faces
    from mmface4d_datasets.official import read_audio, read_take

    folder = Path(folder)
    take = read_take(folder)
    faces_path = Path(faces) if faces else _find_faces(folder)
    if faces_path is None:
        raise MMFace4DError(
            f"{folder}: no triangles found beside the take (bfm_faces.pkl, faces.npy or "
            "BFM/facemodel_info.mat); give them with --faces FILE"
        )
    triangles = load_faces(faces_path)
    num_vertices = int(triangles.max()) + 1
    vertices = take.vertices(num_vertices)
    audio = read_audio(take.audio) if take.audio and Path(take.audio).is_file() else None
    return Sequence(vertices, triangles, audio, FPS, f"take {take.take_id}", "-z", dict(take.calibrations))


def load_release_row(data, sequence_id: str) -> Sequence:
    """One row of a release (canonical head frame, y up) with its audio and the release's triangles."""
    from mmface4d_datasets.release.reader import Release

    release = Release(data)
    record = release.record(sequence_id)
    audio = record.get("audio")
    audio = (np.asarray(audio["array"], np.float32), int(audio["sampling_rate"])) if audio else None
    fps = float(release.info.uniform_fps or FPS)
    return Sequence(record["vertices"], release.topology["triangles"].astype(np.int64), audio, fps, f"{data} id {sequence_id}", "+z")


def load_ply_folder(folder, audio_path=None) -> Sequence:
    """Frames ``*.ply`` of a folder (``mmface4d export`` output), in name order, one topology; audio
    from ``audio_path`` or the folder's single ``.wav``, if any."""
    import trimesh

    from mmface4d_datasets.errors import FormatError
    from mmface4d_datasets.official import read_audio

    folder = Path(folder)
    files = sorted(folder.glob("*.ply"))
    if not files:
        raise MMFace4DError(f"{folder}: no .ply frames")
    frames, triangles = [], None
    for path in files:
        try:
            mesh = trimesh.load(path, process=False, force="mesh")
        except Exception as exc:  # trimesh raises many types for a broken file
            raise FormatError(f"{path}: not a readable PLY mesh ({exc})") from exc
        if triangles is None:
            triangles = np.asarray(mesh.faces, dtype=np.int64)
        elif len(mesh.vertices) != len(frames[0]) or not np.array_equal(mesh.faces, triangles):
            raise FormatError(f"{path}: {len(mesh.vertices)} vertices / another topology than {files[0].name}")
        frames.append(np.asarray(mesh.vertices, dtype=np.float32))
    wavs = [Path(audio_path)] if audio_path else sorted(folder.glob("*.wav"))
    audio = read_audio(wavs[0]) if len(wavs) == 1 else None
    return Sequence(np.stack(frames), triangles, audio, FPS, str(folder), _facing(frames[0], triangles))


def _facing(vertices, triangles) -> str:
    """ "-z" or "+z": the side the mesh's outside (area-weighted normal) points to."""
    v = np.asarray(vertices, np.float64)
    n = np.cross(v[triangles[:, 1]] - v[triangles[:, 0]], v[triangles[:, 2]] - v[triangles[:, 0]]).sum(0)
    return "+z" if n[2] > 0 else "-z"


def load_source(source=None, *, data=None, sequence_id=None, faces=None, audio=None) -> Sequence:
    """:func:`load_release_row` (``data`` and ``sequence_id``), :func:`load_ply_folder` (a folder of
    .ply files) or :func:`load_take` (any other folder); checks vertices and triangles."""
    if data is not None or sequence_id is not None:
        if data is None or sequence_id is None:
            raise MMFace4DError("a release row needs both --data RELEASE and --id ID")
        ignored = [name for name, value in (("SOURCE", source), ("--faces", faces), ("--audio", audio)) if value is not None]
        if ignored:
            raise MMFace4DError(
                f"{' and '.join(ignored)} cannot be used with --data: a release row brings its own triangles (meta/topology.npz) and audio"
            )
        seq = load_release_row(data, sequence_id)
    else:
        if source is None:
            raise MMFace4DError("give a SOURCE folder (take or PLY frames) or --data RELEASE --id ID")
        path = Path(source)
        if not path.is_dir():
            raise MMFace4DError(f"{path}: no such folder (a take folder or a folder of .ply frames)")
        ply = any(path.glob("*.ply"))
        if ply and faces is not None:
            raise MMFace4DError(f"{path}: --faces is for a take folder; a folder of .ply frames carries its own triangles")
        if not ply and audio is not None:
            raise MMFace4DError(f"{path}: --audio is for a folder of .ply frames; a take folder's audio is its ID.wav")
        seq = load_ply_folder(path, audio) if ply else load_take(path, faces)
    check_sequence(seq)
    return seq


def check_sequence(seq: Sequence) -> None:
    v = np.asarray(seq.vertices)
    if v.ndim != 3 or v.shape[-1] != 3 or len(v) == 0:
        raise RenderError(f"{seq.name}: vertices must be (T, N, 3) with T > 0, found {v.shape}")
    check_mesh(v[0], seq.triangles, seq.name)
    finite = np.isfinite(v).all(axis=(1, 2))
    if not finite.all():
        bad = np.flatnonzero(~finite)
        raise RenderError(f"{seq.name}: frames {bad[:5].tolist()}{' ...' if len(bad) > 5 else ''} hold NaN or infinite vertices")


# ------------------------------------------------------------------------ cameras and frames
def parse_background(text) -> tuple[int, int, int]:
    if isinstance(text, (tuple, list)):
        return tuple(int(c) for c in text)
    text = str(text).strip().lower()
    if text in BACKGROUNDS:
        return BACKGROUNDS[text]
    try:
        if text.startswith("#") and len(text) == 7:
            return tuple(int(text[i : i + 2], 16) for i in (1, 3, 5))
        parts = [int(p) for p in text.split(",")]
        if len(parts) == 3 and all(0 <= p <= 255 for p in parts):
            return tuple(parts)
    except ValueError:
        pass
    raise MMFace4DError(f"background {text!r}: use a name ({', '.join(BACKGROUNDS)}), R,G,B or #rrggbb")


def sequence_camera(seq: Sequence, view="front", size=None) -> Camera:
    """The camera for the whole sequence: a framing of all its frames from "front"/"left"/"right",
    or the take's camera by index (its calibration must give its extrinsics, camera 1 always does)."""
    if isinstance(view, int) or str(view).isdigit():
        from mmface4d_datasets.camera import read_take_cameras

        index = int(view)
        if index not in seq.calibrations:
            raise RenderError(
                f"{seq.name}: no calibration of camera {index} (have: {sorted(seq.calibrations) or 'none'}); use --view front|left|right"
            )
        camera, _ = read_take_cameras(seq.calibrations[index], index)
        if camera.extrinsics is None:
            raise RenderError(
                f"{seq.calibrations[index]}: camera {index} carries no extrinsics to camera 1 "
                "(the authors' files have none); only camera 1 or front/left/right can be drawn"
            )
        if size is not None:
            camera = camera.resized(*size)
        elif camera.width > 960:
            camera = camera.resized(camera.width // 2, camera.height // 2)
        return camera
    width, height = size or (512, 512)
    return framing_camera(seq.vertices, width, height, view, facing=seq.facing)


def render_frame(
    vertices, triangles, camera: Camera, background=(255, 255, 255), colors=None, normals=None, out=None, backend: str = "auto"
):
    """One shaded RGB frame (H, W, 3) uint8 and its fragments (pass them back as ``out``)."""
    frags = rasterize(vertices, triangles, camera, backend=backend, checked=True, out=out)
    cam_vertices = camera.to_camera(vertices)
    if normals is None:
        normals = vertex_normals(cam_vertices, triangles)
    else:
        normals = normals @ camera.extrinsics[:3, :3]
    return shade(frags, cam_vertices, triangles, colors=colors, normals=normals, background=background), frags


# ------------------------------------------------------------------------ encoding
def check_audio(audio, num_frames: int, fps: float, name: str):
    """Audio trimmed to the video's length; warns (:class:`AudioLengthWarning`) when the lengths
    differ by more than :data:`AUDIO_SLACK` seconds."""
    if audio is None:
        return None
    samples, rate = audio
    samples = np.asarray(samples, np.float32).reshape(-1)
    video_seconds = num_frames / fps
    audio_seconds = len(samples) / rate
    if abs(video_seconds - audio_seconds) > AUDIO_SLACK:
        warnings.warn(
            f"{name}: audio lasts {audio_seconds:.3f} s but {num_frames} frames at {fps:g} fps last "
            f"{video_seconds:.3f} s; writing the video with the audio that is there",
            AudioLengthWarning,
            stacklevel=2,
        )
    return samples[: int(round(video_seconds * rate))], rate


def encode_video(
    path,
    frames,
    num_frames: int,
    width: int,
    height: int,
    fps: float = FPS,
    audio=None,
    progress: bool = True,
    crf: int = 18,
    preset: str = "veryfast",
    name: str = "video",
) -> Path:
    """Encode RGB frames (an iterable of (H, W, 3) uint8) to an H.264 MP4 (yuv420p) with optional
    mono audio (samples, rate) as AAC; written to a temporary name in the target folder, renamed
    when complete (removed on failure). Width and height must be even."""
    import av

    path = Path(path)
    if width % 2 or height % 2:
        raise RenderError(f"video size {width}x{height}: H.264 (yuv420p) needs even width and height")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = temporary_path(path)
        container = av.open(str(tmp), "w", format="mp4")
        container.metadata["comment"] = RENDER_TAG  # how a later render knows this file is its own to replace
    except OSError as exc:
        raise MMFace4DError(f"{path}: cannot write the video there ({exc.strerror or exc})") from exc
    try:
        from fractions import Fraction

        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(crf), "preset": preset}
        astream = None
        if audio is not None:
            samples, rate = audio
            astream = container.add_stream("aac", rate=rate)
            astream.layout = "mono"
        bar = _progress(num_frames, name, progress)
        for index, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            frame.pts = index
            for packet in stream.encode(frame):
                container.mux(packet)
            bar.update(1)
        bar.close()
        for packet in stream.encode():
            container.mux(packet)
        if astream is not None:
            _encode_audio(container, astream, samples, rate)
        container.close()
    except BaseException:
        try:
            container.close()
        except Exception:  # closing a broken container may fail again; the temporary file goes anyway
            pass
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)
    return path


def _encode_audio(container, stream, samples, rate, chunk: int = 1024):
    import av

    for start in range(0, len(samples), chunk):
        piece = samples[start : start + chunk]
        frame = av.AudioFrame.from_ndarray(piece[None, :].astype(np.float32), format="fltp", layout="mono")
        frame.sample_rate = rate
        frame.pts = start
        for packet in stream.encode(frame):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)


def _progress(total: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=f"render {name}", unit="frame", disable=not enabled, leave=False)


#: Written into every PNG (tEXt Software) and MP4 (comment) that `mmface4d render` makes.
RENDER_TAG = "mmface4d render"


def _ours(path: Path) -> bool:
    """Whether the existing file at `path` is a PNG or MP4 that `mmface4d render` wrote (its tag inside)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(1 << 16)
    except OSError:
        return False
    if head.startswith(b"\x89PNG"):
        return b"tEXtSoftware\x00" + RENDER_TAG.encode() in head
    try:
        import av

        with av.open(str(path)) as container:
            return container.metadata.get("comment") == RENDER_TAG
    except Exception:  # not a media file at all
        return False


def check_output_file(path) -> None:
    """Refuse `path` when it exists and is not a file `mmface4d render` wrote (the output-folder rule, for one
    file): a user's own image or video is never replaced."""
    path = Path(path)
    if path.is_dir():
        raise MMFace4DError(f"{path}: --out is a folder; give a file name (.mp4, or .png with --still)")
    if path.exists() and not _ours(path):
        raise MMFace4DError(
            f"{path}: exists and was not written by mmface4d render; it is left as it is (choose another --out, or remove it)"
        )


def write_png(path, image: np.ndarray) -> Path:
    """A PNG (temporary name, then rename) without dates or version strings in it."""
    import io

    from PIL import Image

    from mmface4d_datasets.files import atomic_write_bytes

    from PIL.PngImagePlugin import PngInfo

    tag = PngInfo()
    tag.add_text("Software", RENDER_TAG)  # how a later render knows this file is its own to replace
    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buffer, format="PNG", pnginfo=tag)
    try:
        atomic_write_bytes(path, buffer.getvalue())
    except OSError as exc:
        raise MMFace4DError(f"{path}: cannot write the image there ({exc.strerror or exc})") from exc
    return Path(path)


def render_sequence(
    seq: Sequence,
    out,
    *,
    view="front",
    size=None,
    background="white",
    still: int | None = None,
    progress: bool = True,
    backend: str = "auto",
) -> Path:
    """``seq`` to an MP4 with its audio (or, with ``still``, frame ``still`` to a PNG) at ``out``."""
    background = parse_background(background)
    camera = sequence_camera(seq, view, size)
    T = len(seq.vertices)
    check_output_file(out)
    if still is not None:
        if not 0 <= still < T:
            raise MMFace4DError(f"--still {still}: {seq.name} has frames 0..{T - 1} (counted from 0; no negative indices)")
        image, frags = render_frame(seq.vertices[still], seq.triangles, camera, background, backend=backend)
        if not frags.mask.any():
            raise RenderError(f"{seq.name}: the camera sees nothing of frame {still}")
        return write_png(out, image)
    first, frags = render_frame(seq.vertices[0], seq.triangles, camera, background, backend=backend)
    if not frags.mask.any():
        raise RenderError(f"{seq.name}: the camera ({view}) sees nothing of the mesh")
    audio = check_audio(seq.audio, T, seq.fps, seq.name)

    def frames():
        out_frags = frags
        yield first
        for t in range(1, T):
            image, out_frags = render_frame(seq.vertices[t], seq.triangles, camera, background, out=out_frags, backend=backend)
            yield image

    return encode_video(out, frames(), T, camera.width, camera.height, seq.fps, audio, progress, name=seq.name)
