"""Viewer speed and size (prints JSON): `mmface4d view` on synthetic releases at 5,023 and 35,709 vertices.

Per vertex count, one release of ``--takes`` synthetic takes (1 subject, seed 0) built in a temporary
folder, then:

1. ``bytes``: what the page downloads per take (MF4V ``truth.bin``, gzip level 1 as the server sends it
   and level 6 as an export writes it) against raw float32 (T x N x 12)
   and against the release's own stored vertex bytes (the codec column of the shard), per second of
   animation; and the triangles sent once (``topology.bin``) against int64 ``triangles``.
2. ``server``: seconds the server needs to make one take's files the first time (record read and
   decoded, MF4V encoded, WAV written) and again from its cache, against reading and decoding the
   same record alone (the release's own cost, the anchor).
3. ``browser`` (headless Chromium through Playwright, SwiftShader WebGL on the CPU, as the tests
   run it): time from ``load(id)`` to the first frame drawn (fetch, inflate, decode, upload, draw),
   and frames drawn per second during ``--play`` seconds of playback at 1x (the take is 30 fps, so
   30 is keeping up), with the frames the audio clock asked for that were not drawn.

    .venv/bin/python perf/viewer.py [--takes 2] [--play 3] [--sizes 5023 35709]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CHROMIUM_ARGS = ["--enable-unsafe-swiftshader", "--use-angle=swiftshader", "--autoplay-policy=no-user-gesture-required", "--mute-audio"]


def build_release(folder: Path, num_vertices: int, takes: int) -> float:
    from mmface4d_datasets.release.card import SYNTHETIC_CARD_INFO
    from mmface4d_datasets.release.synthetic_source import synthetic_sources
    from mmface4d_datasets.release.writer import write_release

    start = time.perf_counter()
    sources, topology = synthetic_sources(subjects=1, sentences=takes, seed=0, num_vertices=num_vertices, raw=False)
    write_release(sources, folder, topology=topology, seed=0, card_info=SYNTHETIC_CARD_INFO | {"pretty_name": "perf"})
    return time.perf_counter() - start


def measure_size(folder: Path) -> dict:
    import numpy as np

    from benchmark.viewer.content import ViewerContent
    from benchmark.viewer.frames import EXPORT_LEVEL, encode_frames
    from mmface4d_datasets.release.reader import Release

    release = Release(folder)
    ids = list(release.sequences()["id"])
    content = ViewerContent(folder)
    rows = []
    for sequence_id in ids:
        started = time.perf_counter()
        stored = release.record(sequence_id, decode=False)
        decoded = release.record(sequence_id)
        anchor = time.perf_counter() - started
        started = time.perf_counter()
        export_bytes = len(encode_frames(decoded["vertices"], EXPORT_LEVEL))
        export_encode = time.perf_counter() - started
        started = time.perf_counter()
        files = content.take(sequence_id).files
        first = time.perf_counter() - started
        started = time.perf_counter()
        content.take(sequence_id)
        cached = time.perf_counter() - started
        frames, count = int(stored["num_frames"]), int(stored["num_vertices"])
        seconds = frames / int(stored["fps"])
        rows.append(
            {
                "id": sequence_id,
                "frames": frames,
                "seconds": round(seconds, 3),
                "mf4v_bytes": len(files["truth.bin"]),
                "mf4v_export_bytes": export_bytes,
                "mf4v_export_encode_s": round(export_encode, 4),
                "float32_bytes": frames * count * 12,
                "release_codec_bytes": len(stored["vertices"]),
                "mf4v_bytes_per_s": round(len(files["truth.bin"]) / seconds),
                "mf4v_export_bytes_per_s": round(export_bytes / seconds),
                "float32_bytes_per_s": round(frames * count * 12 / seconds),
                "release_codec_bytes_per_s": round(len(stored["vertices"]) / seconds),
                "audio_wav_bytes": len(files.get("audio.wav", b"")),
                "server_first_s": round(first, 4),
                "server_cached_s": round(cached, 6),
                "release_read_and_decode_s": round(anchor, 4),
            }
        )
    triangles = release.topology["triangles"]
    total = {key: sum(row[key] for row in rows) for key in ("mf4v_bytes", "mf4v_export_bytes", "float32_bytes", "release_codec_bytes")}
    return {
        "takes": rows,
        "mf4v_over_float32": round(total["mf4v_bytes"] / total["float32_bytes"], 4),
        "mf4v_over_release_codec": round(total["mf4v_bytes"] / total["release_codec_bytes"], 4),
        "mf4v_export_over_float32": round(total["mf4v_export_bytes"] / total["float32_bytes"], 4),
        "mf4v_export_over_release_codec": round(total["mf4v_export_bytes"] / total["release_codec_bytes"], 4),
        "topology_bin_bytes": len(content.topology_bin()),
        "triangles_int64_bytes": int(np.asarray(triangles).shape[0] * 3 * 8),
        "content": content,
    }


def measure_browser(content, play_seconds: float) -> dict:
    from playwright.sync_api import sync_playwright

    from benchmark.viewer.server import make_server, serve_in_thread, server_url

    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        return {"skipped": "no chromium on PATH"}
    server = make_server(content, "127.0.0.1", 0)
    serve_in_thread(server)
    url = server_url(server)
    results = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1100, "height": 720})
            page.goto(url)
            page.evaluate("window.mmface4dViewer.ready")
            for sequence_id in content.keys:
                content.take(sequence_id)  # the server's part is measured apart: warm its cache
                timing = page.evaluate(
                    """async ([id, seconds]) => {
                        const v = window.mmface4dViewer;
                        const t0 = performance.now();
                        await v.load(id);
                        await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
                        const firstFrame = performance.now() - t0;
                        const before = v.state();
                        const start = performance.now();
                        await v.play();
                        await new Promise(r => setTimeout(r, seconds * 1000));
                        const after = v.state();
                        const wall = (performance.now() - start) / 1000;
                        v.pause();
                        return {firstFrame, wall, drawn: after.drawn - before.drawn, frames: after.frame - before.frame,
                                audio: after.audioTime, bytes: after.bytesReceived, vertices: after.vertexCount};
                    }""",
                    [sequence_id, play_seconds],
                )
                results.append(
                    {
                        "id": sequence_id,
                        "vertices": timing["vertices"],
                        "first_frame_s": round(timing["firstFrame"] / 1000, 3),
                        "playback_fps_drawn": round(timing["drawn"] / timing["wall"], 1),
                        "frames_asked_by_audio_clock": timing["frames"] + 1,
                        "frames_not_drawn": max(0, timing["frames"] + 1 - timing["drawn"]),
                        "bytes_received": timing["bytes"],
                    }
                )
            version = browser.version
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return {"chromium": version, "webgl": "SwiftShader (CPU)", "takes": results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--takes", type=int, default=2)
    parser.add_argument("--play", type=float, default=3.0)
    parser.add_argument("--sizes", type=int, nargs="+", default=[5023, 35709])
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    report = {
        "machine": platform.machine(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "cache": "warm (release files just written)",
        "sizes": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            folder = Path(tmp) / f"release-{size}"
            built = build_release(folder, size, args.takes)
            entry = measure_size(folder)
            content = entry.pop("content")
            entry["release_build_s"] = round(built, 1)
            if not args.no_browser:
                entry["browser"] = measure_browser(content, args.play)
            report["sizes"][str(size)] = entry
    report["load_average_end"] = os.getloadavg()
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
