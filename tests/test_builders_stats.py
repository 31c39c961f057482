"""`mmface4d stats`: the statistics figures of a release (numbers that check out against the release,
deterministic PNG bytes, the output-folder rule) and the figures in the card of `mmface4d build`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("matplotlib", reason="the statistics figures need matplotlib (the viz extra)")

from builders.stats import (  # noqa: E402
    FIGURE_FILES,
    INFO_KEY,
    MARKER,
    NUMBERS_FILE,
    RELEASE_FIGURES_DIR,
    card_sequence_rows,
    correlation_from_moments,
    small_regions,
    write_statistics,
)
from mmface4d_datasets.errors import MMFace4DError  # noqa: E402
from mmface4d_datasets.release.reader import Release  # noqa: E402

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def mini(tmp_path_factory):
    """The mini release, built offline into an empty cache (as `load_dataset(name="mini")` does)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MMFACE4D_CACHE", str(tmp_path_factory.mktemp("cache")))
        from mmface4d_datasets.release.mini import ensure_mini_release

        yield ensure_mini_release()


@pytest.fixture(scope="module")
def mini_stats(mini, tmp_path_factory):
    out = tmp_path_factory.mktemp("stats") / "a"
    numbers = write_statistics(mini, out)
    return out, numbers


def test_files_are_written_and_the_json_is_the_numbers(mini_stats):
    out, numbers = mini_stats
    for name in FIGURE_FILES.values():
        data = (out / name).read_bytes()
        assert data.startswith(PNG_SIGNATURE) and len(data) > 5000, name
    assert json.loads((out / NUMBERS_FILE).read_text()) == numbers
    assert (out / MARKER).is_file()


def test_counts_hours_and_emotions_equal_the_sequence_table(mini, mini_stats):
    _, numbers = mini_stats
    release = Release(mini)
    table = release.sequences()
    assert numbers["release"]["sequences"] == len(table) == 24 and numbers["release"]["subjects"] == 8
    assert set(numbers["splits"]) == set(release.info["splits"]) == {"train", "test"}
    for split, part in numbers["splits"].items():
        rows = table[table["split"] == split]
        assert part["sequences"] == len(rows) == release.info["splits"][split]["sequences"]
        assert part["subjects"] == rows["subject_id"].nunique() == release.info["splits"][split]["subjects"]
        assert part["frames"] == int(rows["num_frames"].sum()) == release.info["splits"][split]["frames"]
        assert part["hours"] == pytest.approx(rows["num_frames"].sum() / 30 / 3600, rel=1e-5)
        assert sum(part["emotions"].values()) == len(rows)
        assert list(part["emotions"]) == release.info["emotions"]
        for emotion, count in part["emotions"].items():
            assert count == int((rows["emotion"] == emotion).sum())


def test_durations_are_num_frames_over_fps(mini, mini_stats):
    _, numbers = mini_stats
    seconds = np.sort(Release(mini).sequences()["num_frames"].to_numpy() / 30.0)
    durations = numbers["durations"]
    assert durations["count"] == len(seconds)
    assert durations["min"] == pytest.approx(seconds[0], rel=1e-6)
    assert durations["median"] == pytest.approx(np.median(seconds), rel=1e-6)
    assert durations["max"] == pytest.approx(seconds[-1], rel=1e-6)
    assert durations["total_hours"] == pytest.approx(seconds.sum() / 3600, rel=1e-5)
    assert sum(durations["histogram"]) == len(seconds)


def test_ages_by_gender_count_each_subject_once(mini, mini_stats):
    _, numbers = mini_stats
    table = Release(mini).sequences().drop_duplicates("subject_id")
    ages = numbers["ages"]
    assert ages["subjects"] == 8 == sum(part["subjects"] for part in ages["by_gender"].values())
    for gender, part in ages["by_gender"].items():
        mine = table[table["gender"] == gender]
        assert part["subjects"] == len(mine)
        assert part["age"]["min"] == mine["age"].min() and part["age"]["max"] == mine["age"].max()
        assert sum(part["histogram"]) == mine["age"].notna().sum()
    assert ages["age"]["min"] == table["age"].min() and ages["age"]["max"] == table["age"].max()


def test_velocity_statistic_accuracy_and_chance(mini, mini_stats):
    from mmface4d_datasets.synthetic.quality import region_axis_speed

    _, numbers = mini_stats
    velocity = numbers["velocity"]
    assert velocity["subjects"] == 8 and velocity["chance"] == pytest.approx(1 / 8)
    for key in ("accuracy_scatter", "accuracy_all"):
        assert 0.0 <= velocity[key] <= 1.0
        assert velocity[key] * 24 == pytest.approx(round(velocity[key] * 24), abs=1e-4)  # a whole number of sequences
    assert velocity["scatter"] == ["lips.x", "lips.y", "lips.z"] and len(velocity["points"]) == 24
    assert 1 <= len(velocity["coloured_subjects"]) <= 6
    # one point recomputed from the record the reader gives, in mm/s
    release = Release(mini)
    point = velocity["points"][5]
    record = release.record(point[0])
    expected = region_axis_speed(record["vertices"], release.region_masks()["lips"]) * 30 * 1000
    assert point[1] == record["subject_id"] and np.allclose(point[2:], expected, rtol=1e-5)


def test_correlation_graph_is_symmetric_and_thresholded(mini, mini_stats):
    _, numbers = mini_stats
    correlation = numbers["correlation"]
    matrix = np.asarray(correlation["matrix"])
    assert matrix.shape == (24, 24) and np.allclose(matrix, matrix.T) and np.allclose(np.diag(matrix), 1.0)
    assert sum(correlation["region_sizes"]) == 1000 and min(correlation["region_sizes"]) > 0
    assert all(edge[2] >= 0.5 and edge[0] < edge[1] for edge in correlation["edges"])
    above = {(i, j) for i in range(24) for j in range(i + 1, 24) if matrix[i, j] >= 0.5}
    assert {(e[0], e[1]) for e in correlation["edges"]} == above
    frames = Release(mini).sequences()["num_frames"]
    assert correlation["frames"] == int(frames.sum())


def test_png_bytes_are_deterministic_and_carry_no_version(mini, mini_stats, tmp_path):
    import matplotlib

    out, _ = mini_stats
    write_statistics(mini, tmp_path / "b")
    for name in (*FIGURE_FILES.values(), NUMBERS_FILE):
        assert (out / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    for name in FIGURE_FILES.values():
        data = (out / name).read_bytes()
        assert b"Software" not in data and matplotlib.__version__.encode() not in data and b"tIME" not in data


def test_output_folder_rule(mini, mini_stats, tmp_path):
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(MMFace4DError, match="not empty and was not made by `mmface4d stats`"):
        write_statistics(mini, foreign)
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]
    # a folder this command made is written again; a file someone added there stays
    out, _ = mini_stats
    (out / "extra.txt").write_text("keep")
    write_statistics(mini, out)
    assert (out / "extra.txt").read_text() == "keep"
    (tmp_path / "file").write_text("x")
    with pytest.raises(MMFace4DError, match="not a folder"):
        write_statistics(mini, tmp_path / "file")


def test_cli_help_and_errors(tmp_path):
    run = subprocess.run([sys.executable, "-m", "mmface4d_datasets", "stats", "--help"], capture_output=True, text=True)
    assert run.returncode == 0 and "--out" in run.stdout and "nearest-centroid" in run.stdout
    run = subprocess.run(
        [sys.executable, "-m", "mmface4d_datasets", "stats", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "no such release folder" in run.stderr and "Traceback" not in run.stderr


@pytest.mark.slow  # the whole command in a new process (imports, numbers, figures) again
def test_cli_on_the_mini_release(mini, tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "mmface4d_datasets", "stats", str(mini), "--out", str(tmp_path / "s"), "--quiet"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    summary = json.loads(run.stdout)
    assert summary["sequences"] == 24 and summary["chance"] == pytest.approx(0.125)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == sorted([MARKER, NUMBERS_FILE, *FIGURE_FILES.values()])


def test_nearest_centroid_matches_a_plain_loop():
    from mmface4d_datasets.synthetic.quality import nearest_centroid_accuracy

    def plain(features, labels):
        z = (features - features.mean(0)) / np.where(features.std(0) > 0, features.std(0), 1.0)
        correct = 0
        for i in range(len(z)):
            keep = np.arange(len(z)) != i
            distances = {
                c: np.linalg.norm(z[i] - z[keep & (labels == c)].mean(0)) for c in np.unique(labels) if (keep & (labels == c)).any()
            }
            correct += min(distances, key=lambda c: (distances[c], c)) == labels[i]
        return correct / len(z)

    rng = np.random.default_rng(3)
    labels = rng.integers(0, 7, size=60)
    labels[0] = 9  # a class with one sequence: always an error
    features = rng.normal(size=(60, 4)) + labels[:, None] * 0.3
    assert nearest_centroid_accuracy(features, labels, chunk=7) == pytest.approx(plain(features, labels))
    assert nearest_centroid_accuracy(np.zeros((1, 3)), ["a"]) == 0.0


def test_small_regions_and_correlation_helpers():
    rng = np.random.default_rng(0)
    points = rng.normal(size=(300, 3))
    labels, seeds = small_regions(points, 10, start=4)
    assert seeds[0] == 4 and len(set(seeds.tolist())) == 10 and labels[seeds].tolist() == list(range(10))
    distance = np.linalg.norm(points[:, None] - points[seeds][None], axis=-1)
    assert np.array_equal(labels, distance.argmin(1))
    t = np.linspace(0, 1, 50)
    series = np.stack([t, 2 * t + 1, -t, np.zeros_like(t)], axis=1)
    series -= series.mean(0)
    corr = correlation_from_moments(series.T @ series)
    assert np.allclose(corr[0, 1], 1) and np.allclose(corr[0, 2], -1) and corr[0, 3] == 0 and corr[3, 3] == 1


def test_card_rows_read_back_give_the_writers_card(tmp_path):
    from mmface4d_datasets.release.card import render_card
    from mmface4d_datasets.release.writer import write_release
    from test_release_support import make_topology, small_sources

    out = tmp_path / "release"
    write_release(small_sources(3, 2, frames=12), out, topology=make_topology(), progress=False, card_info={"pretty_name": "Rows test"})
    release = Release(out)
    assert INFO_KEY not in release.info and "No figures in this build" in (out / "README.md").read_text()
    again = render_card(release.info, release.splits, card_sequence_rows(release), {"pretty_name": "Rows test"})
    assert again == (out / "README.md").read_text(encoding="utf-8")


def test_a_build_without_figures_leaves_none_of_ours_behind(tmp_path, monkeypatch, capsys):
    import builders.stats as stats
    from mmface4d_datasets.release.writer import write_release
    from test_release_support import make_topology, small_sources

    out = tmp_path / "release"
    write_release(small_sources(3, 2, frames=12), out, topology=make_topology(), progress=False)
    added = stats.add_figures_to_release(out, {})
    assert len(added) == 6 and all((out / path).is_file() for path in added)
    (out / RELEASE_FIGURES_DIR / "notes.txt").write_text("not ours")

    def fail(*args, **kwargs):
        raise MMFace4DError("meta/topology.npz has no 'lips' region")

    monkeypatch.setattr(stats, "write_statistics", fail)
    assert stats.add_figures_to_release(out, {}) == []
    assert "no statistics figures" in capsys.readouterr().err
    assert sorted(p.name for p in (out / RELEASE_FIGURES_DIR).iterdir()) == ["notes.txt"]
    monkeypatch.setattr(stats, "viz_available", lambda: False)
    assert stats.add_figures_to_release(out, {}) == []


def test_synthetic_build_puts_the_figures_in_the_card_and_info(tmp_path):
    from builders.build import build_synthetic_release
    from mmface4d_datasets.files import sha256_file
    from mmface4d_datasets.release.validate import validate_release

    out = tmp_path / "synth"
    build_synthetic_release(out, subjects=3, sentences=2, num_vertices=500, progress=False)
    info = json.loads((out / "meta" / "info.json").read_text())
    images = [image["path"] for image in info[INFO_KEY]["images"]]
    assert images == [f"{RELEASE_FIGURES_DIR}/{name}" for name in FIGURE_FILES.values()]
    assert info[INFO_KEY]["numbers"] == f"{RELEASE_FIGURES_DIR}/{NUMBERS_FILE}"
    for path in [*images, info[INFO_KEY]["numbers"]]:
        assert info["files"][path]["sha256"] == sha256_file(out / path)
    card = (out / "README.md").read_text(encoding="utf-8")
    for path in images:
        assert f"]({path})" in card
    assert "No figures in this build" not in card and "{{" not in card
    assert "pretty_name: MMFace4D synthetic" in card  # the build's card fields survive the second rendering
    assert validate_release(out) == []
    numbers = json.loads((out / info[INFO_KEY]["numbers"]).read_text())
    assert numbers["release"]["sequences"] == 6 and numbers["velocity"]["chance"] == pytest.approx(1 / 3)
    assert not (out / RELEASE_FIGURES_DIR / MARKER).exists()  # nothing hidden, nothing unlisted
    assert sorted(p.name for p in (out / RELEASE_FIGURES_DIR).iterdir()) == sorted([NUMBERS_FILE, *FIGURE_FILES.values()])


@pytest.mark.slow  # builds the authors' sample take (35,709 vertices) into a release: about 20 s
def test_stats_on_a_release_built_from_the_fixture_take(official_sample, tmp_path):
    from builders.build import build_release

    manifest = tmp_path / "manifest.csv"
    manifest.write_text("take_id,subject_id,sentence_id,text,gender,age\n000337,S001,000001,,female,30\n")
    build_release(official_sample, tmp_path / "release", manifest=manifest, progress=False)
    numbers = json.loads((tmp_path / "release" / RELEASE_FIGURES_DIR / NUMBERS_FILE).read_text())
    assert numbers["release"]["num_vertices"] == 35709 and numbers["release"]["sequences"] == 1
    assert numbers["durations"]["min"] == numbers["durations"]["max"] == pytest.approx(67 / 30)
    velocity = numbers["velocity"]
    assert velocity["chance"] == 1.0 and velocity["accuracy_all"] is None  # one subject: nothing to tell apart
    lips = velocity["per_subject"]["S001"]["mean"][:3]
    assert all(0.1 < v < 200 for v in lips), lips  # mm/s of a real speaking mouth
    assert numbers["correlation"]["frames"] == 67 and sum(numbers["correlation"]["region_sizes"]) == 35709
    assert numbers["ages"]["by_gender"]["female"]["age"]["min"] == 30
    card = (tmp_path / "release" / "README.md").read_text(encoding="utf-8")
    assert f"]({RELEASE_FIGURES_DIR}/motion_correlation.png)" in card
