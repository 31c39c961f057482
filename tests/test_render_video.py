"""`mmface4d render`: the sample take to an MP4 with its audio, PNG stills, PLY folders, release
rows, and named errors for bad input."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from mmface4d_datasets.cli import main
from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.render.raster import RenderError
from mmface4d_datasets.render.video import (
    AudioLengthWarning,
    Sequence,
    load_source,
    render_sequence,
)


def _read_back(path):
    import av

    with av.open(str(path)) as container:
        video, audio = container.streams.video[0], container.streams.audio[0]
        frames = sum(1 for _ in container.decode(video=0))
        info = (
            video.codec_context.name,
            video.width,
            video.height,
            float(video.average_rate),
            float(video.duration * video.time_base),
            float(audio.duration * audio.time_base),
            audio.codec_context.name,
            audio.sample_rate,
        )
    return frames, info


def test_sample_take_renders_to_mp4_with_audio(official_sample, tmp_path, capsys):
    out = tmp_path / "take.mp4"
    assert main(["render", str(official_sample), "--out", str(out), "--size", "128x128", "--quiet"]) == 0
    assert "67 frames" in capsys.readouterr().out
    frames, (codec, width, height, rate, video_s, audio_s, acodec, srate) = _read_back(out)
    assert frames == 67 and codec == "h264" and (width, height) == (128, 128) and rate == 30.0
    assert acodec == "aac" and srate == 16000
    assert video_s == pytest.approx(67 / 30, abs=1e-3)
    assert abs(video_s - audio_s) < 0.1  # the sample's audio is 2.233 s, as the 67 frames
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary left


@pytest.fixture(scope="module")
def sample_sequence(official_sample):
    return load_source(official_sample)


def test_still_png_and_views(sample_sequence, tmp_path):
    from PIL import Image

    seq = sample_sequence
    front = render_sequence(seq, tmp_path / "front.png", still=5, size=(96, 64), background="black")
    left = render_sequence(seq, tmp_path / "left.png", still=5, size=(96, 64), view="left", background="black")
    cam1 = render_sequence(seq, tmp_path / "cam1.png", still=5, view=1, background="black")
    a, b = np.asarray(Image.open(front)), np.asarray(Image.open(left))
    assert a.shape == (64, 96, 3) and a.any() and not np.array_equal(a, b)
    assert np.asarray(Image.open(cam1)).shape == (540, 960, 3)
    # the same PNG bytes twice (no dates in the file)
    again = render_sequence(seq, tmp_path / "again.png", still=5, size=(96, 64), background="black")
    assert front.read_bytes() == again.read_bytes()
    with pytest.raises(RenderError, match="no extrinsics"):
        render_sequence(seq, tmp_path / "c0.png", still=5, view=0)
    with pytest.raises(MMFace4DError, match="frames 0..66"):
        render_sequence(seq, tmp_path / "x.png", still=67)


def _sphere_sequence(frames=6, audio_seconds=None):
    from test_render_raster import _sphere

    v, tris = _sphere(0.1, np.array([0.0, 0.0, 0.7]), 12, 24)
    verts = np.stack([v + [0, 0.002 * t, 0] for t in range(frames)]).astype(np.float32)
    rate = 16000
    seconds = frames / 30 if audio_seconds is None else audio_seconds
    audio = (np.sin(np.arange(int(seconds * rate)) / 20).astype(np.float32) * 0.1, rate)
    return Sequence(verts, tris, audio, 30, "sphere", "-z")


def test_ply_folder_source(tmp_path):
    from mmface4d_datasets.export import export_sequence
    from mmface4d_datasets.official import write_audio

    seq = _sphere_sequence(5)
    folder = tmp_path / "plys"
    export_sequence(seq.vertices, seq.triangles, folder)
    write_audio(folder / "speech.wav", seq.audio[0], seq.audio[1])
    loaded = load_source(folder)
    np.testing.assert_array_equal(loaded.vertices, seq.vertices)
    assert loaded.audio is not None and loaded.facing == "-z"
    out = render_sequence(loaded, tmp_path / "ply.mp4", size=(64, 64), progress=False)
    assert _read_back(out)[0] == 5


def test_audio_length_mismatch_warns_and_renders(tmp_path):
    seq = _sphere_sequence(6, audio_seconds=1.0)
    with pytest.warns(AudioLengthWarning, match="audio lasts 1.000 s"):
        out = render_sequence(seq, tmp_path / "a.mp4", size=(64, 64), progress=False)
    frames, info = _read_back(out)
    assert frames == 6 and info[5] == pytest.approx(0.2, abs=0.1)  # audio trimmed to the video


def test_bad_input_is_named(tmp_path):
    seq = _sphere_sequence(3)
    bad = Sequence(seq.vertices.copy(), seq.triangles, None, 30, "nan-seq")
    bad.vertices[2, 7, 0] = np.nan
    with pytest.raises(RenderError, match=r"nan-seq: frames \[2\]"):
        render_sequence(_checked(bad), tmp_path / "x.mp4")
    short = Sequence(seq.vertices[:, :10], seq.triangles, None, 30, "short")
    with pytest.raises(RenderError, match="vertex count does not match"):
        _checked(short)
    # a camera that sees nothing: the take's camera 1 is at the origin, the sphere behind it
    behind = Sequence(seq.vertices - [0, 0, 2.0], seq.triangles, None, 30, "behind", "-z", {1: _calibration(tmp_path)})
    with pytest.raises(RenderError, match="sees nothing"):
        render_sequence(behind, tmp_path / "x.mp4", view=1)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(MMFace4DError, match="cannot write"):
        render_sequence(seq, blocker / "x.mp4", size=(32, 32), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(MMFace4DError, match="background"):
            render_sequence(seq, tmp_path / "x.mp4", background="plaid")
    assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def _checked(seq):
    from mmface4d_datasets.render.video import check_sequence

    check_sequence(seq)
    return seq


def _calibration(tmp_path):
    from mmface4d_datasets.camera import Camera, write_take_json

    path = tmp_path / "000001_1.json"
    write_take_json(path, Camera(np.array([[100.0, 0, 31.5], [0, 100, 31.5], [0, 0, 1]]), 64, 64))
    return path


def test_release_row_and_unknown_id(tmp_path, capsys):
    from mmface4d_datasets.release.reader import Release
    from mmface4d_datasets.release.writer import write_release
    from test_release_support import make_topology, small_sources

    release = tmp_path / "release"
    write_release(small_sources(2, 2, frames=8), release, topology=make_topology(), progress=False)
    sequence_id = Release(release).sequences()["id"][0]
    out = tmp_path / "row.png"
    assert main(["render", "--data", str(release), "--id", sequence_id, "--out", str(out), "--still", "0", "--size", "64x64"]) == 0
    from PIL import Image

    image = np.asarray(Image.open(out))
    assert (image != 255).any(axis=2).sum() > 300  # the face is drawn, seen from the front (+z)
    assert main(["render", "--data", str(release), "--id", "nope", "--out", str(tmp_path / "x.mp4")]) == 2
    assert "nope" in capsys.readouterr().err


def test_render_replaces_only_its_own_files_and_refuses_what_it_would_ignore(tmp_path, capsys):
    """Issue 24: an existing file the renderer did not write is never replaced; negative frame indices and
    options it would ignore are refused by name."""
    from mmface4d_datasets.errors import MMFace4DError
    from mmface4d_datasets.export import export_sequence

    seq = _sphere_sequence(4)
    mine = render_sequence(seq, tmp_path / "mine.mp4", size=(64, 64), progress=False)
    assert render_sequence(seq, mine, size=(64, 64), progress=False) == mine  # its own video: replaced
    still = render_sequence(seq, tmp_path / "mine.png", still=1, size=(64, 64))
    assert render_sequence(seq, still, still=2, size=(64, 64)) == still
    for name in ("holiday.png", "talk.mp4"):
        theirs = tmp_path / name
        theirs.write_bytes(b"the user's own file")
        with pytest.raises(MMFace4DError, match="not written by mmface4d render"):
            render_sequence(seq, theirs, still=0 if name.endswith(".png") else None, size=(64, 64), progress=False)
        assert theirs.read_bytes() == b"the user's own file"
    with pytest.raises(MMFace4DError, match="no negative indices"):
        render_sequence(seq, tmp_path / "x.png", still=-1, size=(64, 64))
    folder = tmp_path / "plys"
    export_sequence(seq.vertices, seq.triangles, folder)
    with pytest.raises(MMFace4DError, match="--faces is for a take folder"):
        load_source(folder, faces=tmp_path / "faces.npy")
    with pytest.raises(MMFace4DError, match="--faces cannot be used with --data"):
        load_source(data=tmp_path, sequence_id="S/1", faces=tmp_path / "faces.npy")
