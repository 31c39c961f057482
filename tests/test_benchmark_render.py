"""`mmface4d bench render` and `bench score --render-worst K` on a static-baseline submission."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmface4d_datasets.cli import main
from mmface4d_datasets.release.reader import Release
from mmface4d_datasets.release.writer import write_release
from test_release_support import make_topology, small_sources


@pytest.fixture(scope="module")
def static_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench-render")
    release = root / "release"
    write_release(small_sources(4, 3, frames=12), release, topology=make_topology(), progress=False)
    assert (
        main(["bench", "run", "--model", "static", "--data", str(release), "--out", str(root / "static"), "--bootstrap", "10", "--quiet"])
        == 0
    )
    return release, root / "static"


def _video(path):
    import av

    with av.open(str(path)) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        has_audio = bool(container.streams.audio)
    return frames, has_audio


def test_bench_render_one_sequence(static_run, tmp_path, capsys):
    release_dir, run = static_run
    report = json.loads((run / "report.json").read_text())
    row = report["sequences"][0]
    out = tmp_path / "one.mp4"
    assert (
        main(
            [
                "bench",
                "render",
                str(run / "submission.parquet"),
                "--data",
                str(release_dir),
                "--id",
                row["id"],
                "--out",
                str(out),
                "--panel-size",
                "96",
                "--quiet",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    # the metrics drawn are the scorer's; the colour scale comes from the data and is said
    assert f"lip_max {row['lip_max'] * 1000:.3f} mm" in printed and "p99 of the data" in printed
    frames, has_audio = _video(out)
    record = Release(release_dir).record(row["id"])
    assert len(frames) == len(record["vertices"]) and has_audio
    frame = frames[len(frames) // 2].astype(int)
    from benchmark.render import BAR_WIDTH, METRICS_BAND, TITLE_BAND

    assert frame.shape == (TITLE_BAND + 96 + METRICS_BAND, 3 * 96 + BAR_WIDTH, 3)
    panels = [frame[TITLE_BAND : TITLE_BAND + 96, k * 96 : (k + 1) * 96] for k in range(3)]
    drawn = [(np.abs(p - 255).sum(-1) > 30) for p in panels]
    assert all(d.sum() > 200 for d in drawn)  # a face in each panel
    # the error panel is coloured (viridis), the grey shaded ones are not
    sat = [np.ptp(p[d], axis=1).mean() for p, d in zip(panels, drawn)]
    assert sat[2] > 3 * max(sat[0], sat[1])


def test_score_render_worst(static_run, tmp_path):
    from benchmark.render import worst_sequences

    release_dir, run = static_run
    out_json = tmp_path / "scored.json"
    assert (
        main(
            [
                "bench",
                "score",
                str(run / "submission.parquet"),
                "--data",
                str(release_dir),
                "--out",
                str(out_json),
                "--bootstrap",
                "10",
                "--quiet",
                "--render-worst",
                "2",
            ]
        )
        == 0
    )
    report = json.loads(out_json.read_text())
    worst = worst_sequences(report, 2)
    lip = {r["id"]: r["lip_max"] for r in report["sequences"]}
    assert lip[worst[0]] == max(lip.values()) and lip[worst[0]] >= lip[worst[1]]
    videos = sorted((tmp_path / "scored-worst").glob("*.mp4"))
    assert [v.name for v in videos] == sorted(w.replace("/", "_") + ".mp4" for w in worst)


def test_bench_render_unknown_id(static_run, tmp_path, capsys):
    release_dir, run = static_run
    assert (
        main(
            [
                "bench",
                "render",
                str(run / "submission.parquet"),
                "--data",
                str(release_dir),
                "--id",
                "nope",
                "--out",
                str(tmp_path / "x.mp4"),
            ]
        )
        == 2
    )
    assert "nope" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_error_scale_comes_from_the_data_unless_given():
    from benchmark.render import error_scale

    rng = np.random.default_rng(0)
    errors = rng.uniform(1.0, 3.0, (30, 1000))  # typical errors of 1-3 mm ...
    errors[:, :5] = 20.0  # ... and a few border vertices far off (0.5 %)
    assert error_scale(errors) == (5.0, "p99 of the data")  # not 20: the 1-3 mm errors keep their colours
    assert error_scale(errors, 7.5) == (7.5, "given")  # --error-max, for comparisons
    with pytest.raises(Exception, match="positive number of millimetres"):
        error_scale(errors, -1.0)


def test_nice_ceiling():
    from benchmark.render import nice_ceiling

    assert [nice_ceiling(v) for v in (0.7, 1.0, 1.2, 2.2, 3.0, 7.0, 0.013)] == [1.0, 1.0, 2.0, 2.5, 5.0, 10.0, 0.02]
