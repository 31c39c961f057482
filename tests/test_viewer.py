"""`mmface4d view`: the MF4V vertex form, the read-only server, the static export, and the page in real Chromium.

The browser tests drive the system Chromium (Debian's `chromium` package; setup.sh installs it where it
can) through Playwright with SwiftShader WebGL; they skip, saying why, where no browser can start.
"""

from __future__ import annotations

import http.client
import io
import os
import shutil
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from benchmark.viewer.content import ViewerContent, ViewerInputError, take_key
from benchmark.viewer.frames import decode_faces, decode_frames, encode_faces, encode_frames, quantisation_box
from benchmark.viewer.server import is_loopback, make_server, serve_in_thread, server_url, url_path

THREE_VERSION = "0.187.0"
CHROMIUM_ARGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]
BACKGROUND = np.array([244, 244, 242])
TOLERANCE_M = 1e-4  # the page must show positions within 0.1 mm of the release


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def release(mini_release):
    from mmface4d_datasets.release.reader import Release

    return Release(mini_release[0])


@pytest.fixture(scope="module")
def test_takes(release):
    """Two takes of the test split longer than 2 s: the first gets an exact prediction, the second a perturbed one."""
    table = release.sequences("test")
    long = table[table["num_frames"] > 90]["id"].tolist()
    assert len(long) >= 2, "the mini release's test split should hold two takes longer than 3 s"
    return long[:2]


@pytest.fixture(scope="module")
def submission(release, test_takes, tmp_path_factory):
    """A submission for the mini release: take 1 equal to the truth, take 2 with the lips moved 5 mm forward."""
    from benchmark.submission import make_header, write_submission

    lips = release.region_masks()["lips"]
    exact = release.record(test_takes[0])["vertices"]
    moved = release.record(test_takes[1])["vertices"].copy()
    moved[:, lips, 2] += 0.005
    path = tmp_path_factory.mktemp("viewer-submission") / "pred.parquet"
    header = make_header("viewer-test", release_format_version=release.info.format_version, topology=release.info.topology)
    write_submission(path, {test_takes[0]: exact, test_takes[1]: moved}, header, encoding="float32le")
    return path


@pytest.fixture(scope="module")
def content(release, submission):
    return ViewerContent(release.path, name="mini", prediction=submission)


@pytest.fixture(scope="module")
def served(content):
    server = make_server(content, "127.0.0.1", 0)
    serve_in_thread(server)
    yield server_url(server)
    server.shutdown()
    server.server_close()


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*"))}


def _get(url: str, raw_path: str, method: str = "GET") -> tuple[int, bytes]:
    host, port = url.split("//")[1].rstrip("/").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    connection.putrequest(method, raw_path, skip_accept_encoding=True)
    connection.endheaders()
    response = connection.getresponse()
    body = response.read()
    connection.close()
    return response.status, body


# ------------------------------------------------------------------ the vertex form
def test_mf4v_round_trip_on_the_authors_take_within_its_step(official_sample):
    from mmface4d_datasets import official

    vertices = official.read_mesh_sequence(official_sample / "reconstruct_filt", 35_709)[:20]
    data = encode_frames(vertices)
    decoded = decode_frames(data)
    _, step = quantisation_box(vertices)
    error = np.abs(decoded.astype(np.float64) - vertices).max(axis=(0, 1))
    assert decoded.shape == vertices.shape
    assert (error <= step / 2 + 1e-7).all() and error.max() < TOLERANCE_M
    assert len(data) < vertices.nbytes / 2  # under half of float32


def test_mf4v_refuses_bad_input_and_keeps_a_flat_axis():
    with pytest.raises(ValueError, match="NaN"):
        encode_frames(np.full((2, 3, 3), np.nan, np.float32))
    with pytest.raises(ValueError, match=r"\(T, N, 3\)"):
        encode_frames(np.zeros((3, 3), np.float32))
    flat = np.zeros((4, 5, 3), np.float32)
    flat[:, :, 0] = np.linspace(-0.1, 0.1, 5)
    decoded = decode_frames(encode_frames(flat))
    assert np.abs(decoded - flat).max() <= 0.2 / 65535 / 2 + 1e-8 and (decoded[:, :, 1:] == 0).all()
    faces = np.array([[0, 1, 2], [2, 3, 4]])
    assert (decode_faces(encode_faces(faces)) == faces).all()
    with pytest.raises(ValueError, match="MF4V"):
        decode_frames(b"MF4F" + bytes(80))


# ------------------------------------------------------------------ the server
def test_urls_that_leave_the_content_are_refused(served, release, content):
    before = _snapshot(release.path)
    assert _get(served, "/")[0] == 200
    status, body = _get(served, "/data/takes.json")
    assert status == 200 and b'"takes"' in body
    key = content.keys[next(iter(content.keys))]
    assert _get(served, f"/data/takes/{key}/truth.bin")[0] == 200
    for raw in (
        "/../meta/info.json",
        "/%2e%2e/meta/info.json",
        "/static/../../content.py",
        "/static/%2e%2e/%2e%2e/content.py",
        "/static/vendor/..%2f..%2fcontent.py",
        "/data/takes/../../meta/info.json",
        f"/data/takes/{key}/%2e%2e/%2e%2e/%2e%2e/meta/info.json",
        "//etc/passwd",
        "/etc/passwd",
        str(release.path / "meta" / "info.json"),
        "/static/viewer.js%00.png",
        "/static\\viewer.js",
        "/meta/info.json",
        "/data/takes/nobody/000000/truth.bin",
    ):
        assert _get(served, raw)[0] == 404, raw
    assert _get(served, "/data/takes.json", method="POST")[0] == 405
    assert _get(served, "/data/takes.json", method="PUT")[0] == 405
    assert _snapshot(release.path) == before  # the server never writes to the release


def test_url_rules_and_loopback():
    assert url_path("/static/viewer.js?x=1") == "static/viewer.js"
    assert url_path("/a/%2E%2E/b") is None and url_path("/a/./b") is None and url_path("/a//b") is None
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5")
    assert take_key("S01/000001") == "S01/000001"
    assert take_key("../x/000001").startswith("h") and take_key("a/b/c").startswith("h")


def test_non_loopback_host_warns(content, caplog):
    caplog.set_level("WARNING", logger="benchmark.viewer.server")
    server = make_server(content, "0.0.0.0", 0)
    server.server_close()
    assert "non-loopback" in caplog.text


def test_a_submission_for_another_release_is_refused(release, tmp_path):
    from benchmark.submission import make_header, write_submission

    sequence_id = release.sequences("test")["id"].iloc[0]
    frames = int(release.sequences("test")["num_frames"].iloc[0])
    other = tmp_path / "other.parquet"
    header = make_header("other", release_format_version=release.info.format_version, topology="synthetic_v1@500")
    write_submission(other, {sequence_id: np.zeros((frames, 500, 3), np.float32)}, header, encoding="float32le")
    with pytest.raises(ViewerInputError, match="topology"):
        ViewerContent(release.path, prediction=other)
    foreign = tmp_path / "foreign.parquet"
    header = make_header("other", release_format_version=release.info.format_version, topology=release.info.topology)
    write_submission(foreign, {"nobody/000000": np.zeros((3, int(release.info.num_vertices), 3), np.float32)}, header, encoding="float32le")
    with pytest.raises(ViewerInputError, match="not a sequence"):
        ViewerContent(release.path, prediction=foreign)
    with pytest.raises(ViewerInputError, match="no take with id"):
        ViewerContent(release.path, ids=["nobody/000000"])


def test_take_files_hold_the_metrics_and_the_export_refuses_a_foreign_folder(content, test_takes, tmp_path):
    import json

    from benchmark.viewer.export import export_viewer
    from mmface4d_datasets.output_folders import OutputFolderError

    exact = json.loads(content.take(test_takes[0]).files["take.json"])
    moved = json.loads(content.take(test_takes[1]).files["take.json"])
    assert exact["metrics"]["face_max"]["m"] == 0.0 and exact["has_prediction"]
    assert moved["metrics"]["lip_max"]["mm"] == pytest.approx(5.0, abs=1e-3)
    assert moved["error_scale_mm"] == 5.0  # the 99.5th percentile rounded up to 1, 2 or 5 x 10^k
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(OutputFolderError, match="did not write"):
        export_viewer(ViewerContent(content.release.path, ids=test_takes[:1]), foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


# ------------------------------------------------------------------ the page in Chromium
@pytest.fixture(scope="module")
def browser():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("playwright is not installed (pip install playwright==1.65.2; setup.sh does)")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no chromium on PATH (Debian: apt-get install chromium; setup.sh does as root)")
    manager = sync_playwright().start()
    try:
        chromium = manager.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
    except Exception as exc:  # a browser that cannot start here (sandbox, missing libraries)
        manager.stop()
        pytest.skip(f"chromium at {executable} does not start: {exc}")
    yield chromium
    chromium.close()
    manager.stop()


def _open(browser, url: str):
    """A page at ``url`` whose every request is recorded, ready (its first take loaded)."""
    page = browser.new_page(viewport={"width": 1100, "height": 720})
    requests, errors = [], []
    page.on("request", lambda request: requests.append(request.url))
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(url)
    page.evaluate("window.mmface4dViewer.ready")
    return page, requests, errors


def _local(request: str, origin: str) -> bool:
    """A request the page may make offline: to its own origin, a blob: URL of it (the audio), or inline data."""
    return request.startswith(origin) or request.startswith("blob:" + origin.rstrip("/")) or request.startswith("data:")


def _load(page, sequence_id: str) -> dict | str:
    return page.evaluate("id => mmface4dViewer.load(id).then(s => s, e => e.message)", sequence_id)


def _canvas_pixels(page) -> np.ndarray:
    """The WebGL canvas' own pixels (not the page's overlays: colour bar, metrics, labels)."""
    import base64

    from PIL import Image

    url = page.evaluate("document.getElementById('canvas').toDataURL('image/png')")
    data = base64.b64decode(url.split(",", 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _face_fraction(pixels: np.ndarray) -> float:
    return float((np.abs(pixels - BACKGROUND).sum(axis=2) > 30).mean())


def _lip_frames(release, sequence_id: str) -> tuple[int, int]:
    """The frames of a take with the smallest and the largest vertical extent of the lips (closed, open)."""
    vertices = release.record(sequence_id)["vertices"]
    lips = release.region_masks()["lips"]
    extent = np.ptp(vertices[:, lips, 1], axis=1)
    return int(extent.argmin()), int(extent.argmax())


def _check_truth(page, release, sequence_id: str) -> None:
    state = _load(page, sequence_id)
    assert isinstance(state, dict), state
    assert page.evaluate("mmface4dViewer.seek(2.0)") == 60
    state = page.evaluate("mmface4dViewer.state()")
    assert state["frame"] == 60 and state["id"] == sequence_id and state["vertexCount"] == release.info.num_vertices
    shown = np.array(page.evaluate("Array.from(mmface4dViewer.vertices(60))"), dtype=np.float64).reshape(-1, 3)
    truth = release.record(sequence_id)["vertices"][60]
    assert np.abs(shown - truth).max() < TOLERANCE_M
    assert _face_fraction(_canvas_pixels(page)) >= 0.05
    closed, opened = _lip_frames(release, sequence_id)
    fps = state["fps"]
    page.evaluate("t => mmface4dViewer.seek(t)", (closed + 0.5) / fps)
    first = _canvas_pixels(page)
    page.evaluate("t => mmface4dViewer.seek(t)", (opened + 0.5) / fps)
    second = _canvas_pixels(page)
    assert (np.abs(first - second).sum(axis=2) > 20).mean() > 0.001  # the mouth moved on screen


def _check_unknown_id(page) -> None:
    assert "unknown take id" in _load(page, "nobody/000000")
    state = page.evaluate("mmface4dViewer.state()")
    assert state["id"] is None and "no take" in state["message"].lower()


def test_the_page_offline_shows_the_release_frame_by_the_audio_clock(browser, served, release, test_takes):
    page, requests, errors = _open(browser, served)
    try:
        _check_truth(page, release, test_takes[0])
        # audio sync: during playback the frame is floor(audio time x fps), within one frame
        samples = page.evaluate(
            """async () => {
                await mmface4dViewer.seek(0); await mmface4dViewer.play();
                const out = [];
                for (let i = 0; i < 40; i++) {
                    await new Promise(r => requestAnimationFrame(r));
                    const s = mmface4dViewer.state(); out.push([s.frame, s.audioTime, s.fps, s.playing]);
                }
                mmface4dViewer.pause();
                return out;
            }"""
        )
        playing = [(frame, time, fps) for frame, time, fps, on in samples if on and time > 0]
        assert len(playing) >= 10 and playing[-1][1] > playing[0][1]  # the audio clock advanced
        assert all(abs(frame - np.floor(time * fps)) <= 1 for frame, time, fps in playing)
        # the keys: '.' and ',' step one frame, space plays and pauses
        page.evaluate("mmface4dViewer.seek(2.0)")
        page.keyboard.press(".")
        assert page.evaluate("mmface4dViewer.state()")["frame"] == 61
        page.keyboard.press(",")
        page.keyboard.press(",")
        assert page.evaluate("mmface4dViewer.state()")["frame"] == 59
        page.keyboard.press(" ")
        assert page.evaluate("mmface4dViewer.state()")["playing"]
        page.keyboard.press(" ")
        assert not page.evaluate("mmface4dViewer.state()")["playing"]
        _check_unknown_id(page)
        assert not errors, errors
        assert requests and all(_local(url, served) for url in requests), requests  # nothing from outside the server
    finally:
        page.close()


def test_error_heatmap_and_side_by_side(browser, served, release, test_takes, tmp_path):
    page, _, errors = _open(browser, served)
    try:
        assert isinstance(_load(page, test_takes[0]), dict)
        page.evaluate("mmface4dViewer.setMode('error')")
        page.evaluate("mmface4dViewer.seek(2.0)")
        state = page.evaluate("mmface4dViewer.state()")
        assert state["mode"] == "error" and state["maxErrorMm"] == 0
        pixels = _canvas_pixels(page)
        face = np.abs(pixels - BACKGROUND).sum(axis=2) > 30
        assert face.mean() >= 0.05
        assert (pixels[face][:, 2] > pixels[face][:, 0]).mean() > 0.99  # viridis' zero colour (purple) everywhere

        assert isinstance(_load(page, test_takes[1]), dict)
        page.evaluate("mmface4dViewer.setMode('error')")
        page.evaluate("mmface4dViewer.seek(2.0)")
        state = page.evaluate("mmface4dViewer.state()")
        assert state["maxErrorMm"] == pytest.approx(5.0, abs=0.01)
        pixels = _canvas_pixels(page)
        face = np.abs(pixels - BACKGROUND).sum(axis=2) > 30
        warm = pixels[face][:, 0] > pixels[face][:, 2] + 40
        assert 0.005 < warm.mean() < 0.5  # the lips, and only they, at the top of the bar (yellow)
        assert page.locator("#colourbar").is_visible() and page.locator("#metrics").is_visible()
        if os.environ.get("MMFACE4D_WRITE_DOCS"):  # the docs' screenshot (docs/viewer.png)
            page.screenshot(path=str(Path(__file__).resolve().parent.parent / "docs" / "viewer.png"))

        page.evaluate("mmface4dViewer.setMode('side')")
        state = page.evaluate("mmface4dViewer.state()")
        assert state["mode"] == "side" and state["meshes"] == 2
        columns = np.flatnonzero((np.abs(_canvas_pixels(page) - BACKGROUND).sum(axis=2) > 30).any(axis=0))
        gaps = np.diff(columns)
        assert gaps.max() > 5  # two separate meshes, background between them
        assert not errors, errors
    finally:
        page.close()


def test_the_static_export_from_a_plain_static_server(browser, content, release, test_takes, tmp_path):
    from benchmark.viewer.export import export_viewer

    out = tmp_path / "site"
    exported = ViewerContent(release.path, name="mini", prediction=content.prediction.path, ids=test_takes)
    summary = export_viewer(exported, out)
    assert summary["takes"] == 2 and (out / "index.html").is_file()
    assert (out / "static" / "vendor" / "three-LICENSE.txt").is_file()
    html = (out / "index.html").read_text()
    assert 'src="/' not in html and 'href="/' not in html and "http" not in html  # relative URLs only
    again = export_viewer(exported, out)  # its own folder: written again, nothing foreign left
    assert again["files"] == summary["files"]
    handler = partial(SimpleHTTPRequestHandler, directory=str(out))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    try:
        page, requests, errors = _open(browser, url)
        try:
            _check_truth(page, release, test_takes[0])
            _check_unknown_id(page)
            assert not errors, errors
            assert all(_local(request, url) for request in requests), requests
        finally:
            page.close()
    finally:
        server.shutdown()
        server.server_close()


def test_three_is_the_pinned_version():
    from benchmark.viewer.content import STATIC_DIR

    module = (STATIC_DIR / "vendor" / "three.core.js").read_text(encoding="utf-8")
    assert f"const REVISION = '{THREE_VERSION.split('.')[1]}'" in module
    assert "MIT" in (STATIC_DIR / "vendor" / "three-LICENSE.txt").read_text()


# ------------------------------------------------------------------ the command
def _view_parser():
    import argparse

    from benchmark.viewer.cli import register

    parser = argparse.ArgumentParser(prog="mmface4d")
    register(parser.add_subparsers(dest="command"))
    return parser


def test_view_command_exports_and_is_declared(mini_release, release, test_takes, tmp_path, capsys):
    import json
    import tomllib

    declared = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    assert declared["project"]["entry-points"]["mmface4d.commands"]["view"] == "benchmark.viewer.cli:register"
    parser = _view_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["view", "--help"])
    assert "--export" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        parser.parse_args(["view", "mini", "--port", "70000"])
    out = tmp_path / "site"
    args = parser.parse_args(["view", str(release.path), "--export", str(out), "--ids", test_takes[0], "--quiet"])
    assert args.func(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["takes"] == 1 and (out / "data" / "takes" / take_key(test_takes[0]) / "truth.bin").is_file()
    catalogue = json.loads((out / "data" / "takes.json").read_text())
    assert [take["id"] for take in catalogue["takes"]] == [test_takes[0]]
    args = parser.parse_args(["view", str(tmp_path / "absent"), "--no-open"])
    from mmface4d_datasets.release.resolve import ReleaseNotFoundError

    with pytest.raises(ReleaseNotFoundError, match="no such release"):
        args.func(args)


def test_a_hub_name_downloads_meta_then_only_the_shards_of_the_ids(release, test_takes, monkeypatch):
    from benchmark.viewer.content import resolve_release
    from mmface4d_datasets.release import resolve

    calls = []
    monkeypatch.setattr(resolve, "download_release", lambda repo, revision=None, patterns=None: calls.append(patterns) or release.path)
    assert resolve_release("owner/some-release", [test_takes[0]]) == release.path
    table = release.sequences()
    shard = table[table["id"] == test_takes[0]]["shard"].iloc[0]
    assert calls == [["README.md", "meta/*"], ["README.md", "meta/*", shard]]
    calls.clear()
    assert resolve_release("owner/some-release") == release.path and calls == [None]
