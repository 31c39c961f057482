"""The one synthetic source adapter (mini release and `build synthetic`) and the writer's own stale-staging
check, keyed by the sources' `fingerprint()` (release/synthetic_source.py, release/writer.py)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

import numpy as np
import pytest

from mmface4d_datasets.release.schema import SourceSequence
from mmface4d_datasets.release.writer import INPUTS_NAME, STAGING, BuildError, inputs_fingerprint, write_release
from test_release_support import make_topology, small_sources


def test_the_mini_release_and_build_synthetic_share_one_adapter():
    import builders.synthetic
    from mmface4d_datasets.release.mini import MINI_SEED, MINI_VERTICES, mini_sources
    from mmface4d_datasets.release.synthetic_source import SyntheticSource, synthetic_sources

    assert builders.synthetic.SyntheticSource is SyntheticSource and builders.synthetic.synthetic_sources is synthetic_sources
    mini, mini_topology = mini_sources(subjects=1, sentences=2)
    built, topology = synthetic_sources(subjects=1, sentences=2, seed=MINI_SEED, num_vertices=MINI_VERTICES)
    assert all(type(s) is SyntheticSource for s in mini + built)
    assert [s.key for s in mini] == [s.key for s in built] == ["001001", "001002"]
    assert mini_topology.hash == topology.hash
    # the mini release has no raw cameras; `build synthetic` fills the generator's extrinsics
    assert [s.raw for s in mini] == [False, False] and [s.raw for s in built] == [True, True]
    assert mini[0].fingerprint() == built[0].fingerprint() | {"raw": False}
    a, b = mini[0].load(), built[0].load()
    assert a.raw is None and sorted(b.raw.extrinsics) == [0, 1, 2]
    assert np.array_equal(b.raw.extrinsics[1], np.eye(4))  # camera 1 is the reference frame
    assert np.array_equal(a.vertices, b.vertices) and np.array_equal(a.audio, b.audio)
    assert (a.subject_id, a.sentence_id, a.text, a.gender, a.age) == (b.subject_id, b.sentence_id, b.text, b.gender, b.age)


def test_the_synthetic_adapter_checks_durations_for_the_mini_release_too():
    from mmface4d_datasets.release.mini import mini_sources
    from mmface4d_datasets.release.take_rules import TakeError

    (source,), _ = mini_sources(subjects=1, sentences=1)
    strict = type(source)(**{**vars(source), "duration_tolerance_s": -1.0})  # no duration can agree within < 0 s
    with pytest.raises(TakeError, match=r"take 001001 \(synthetic take 001001 \(seed 0\)\): .* mesh frames last"):
        strict.load()


@dataclass(frozen=True)
class Fingerprinted:
    """A source with a fingerprint, as the builders' take sources have: `version` stands for its files."""

    sequence: SourceSequence
    version: int

    @property
    def key(self) -> str:
        return self.sequence.take_id

    def load(self) -> SourceSequence:
        return self.sequence

    def fingerprint(self) -> dict:
        return {"key": self.key, "version": self.version}


@dataclass(frozen=True)
class BrokenSource:
    """A take that fails when loaded (with a fingerprint unless ``plain``)."""

    key: str = "000999"

    def load(self):
        raise ValueError("cannot be read")

    def fingerprint(self) -> dict:
        return {"key": self.key}


class PlainBrokenSource:
    key = "000999"

    def load(self):
        raise ValueError("cannot be read")


def test_the_writer_resumes_the_same_inputs_and_discards_other_ones(tmp_path, caplog):
    topology = make_topology()
    sequences = [source.sequence for source in small_sources(2, 2)]
    out = tmp_path / "release"
    first = [Fingerprinted(s, 1) for s in sequences] + [BrokenSource()]
    with pytest.raises(BuildError, match="000999"):
        write_release(first, out, topology=topology, progress=False)
    recorded = json.loads((out / INPUTS_NAME).read_text())["sha256"]
    assert recorded == inputs_fingerprint(first, topology) is not None
    assert INPUTS_NAME in json.loads((out / ".mmface4d-output.json").read_text())["written"]

    report = write_release(first, out, topology=topology, progress=False, on_error="skip", keep_staging=True)
    assert report.resumed == [s.take_id for s in sequences]  # the same inputs: staged takes reused

    changed = [Fingerprinted(s, 2) for s in sequences]
    with caplog.at_level(logging.WARNING, logger="mmface4d_datasets.release.writer"):
        report = write_release(changed, out, topology=topology, progress=False)
    assert report.resumed == []  # nothing staged from the old inputs was reused
    assert any("holds an unfinished build of other inputs; starting afresh" in r.getMessage() for r in caplog.records)
    assert json.loads((out / INPUTS_NAME).read_text())["sha256"] == inputs_fingerprint(changed, topology) != recorded


def test_a_staged_build_of_unknown_inputs_is_not_resumed_for_fingerprinted_ones(tmp_path):
    topology = make_topology()
    sequences = [source.sequence for source in small_sources(2, 1)]
    out = tmp_path / "release"
    with pytest.raises(BuildError, match="000999"):
        write_release(small_sources(2, 1) + [PlainBrokenSource()], out, topology=topology, progress=False)
    assert (out / STAGING / "takes").is_dir() and not (out / INPUTS_NAME).exists()  # no fingerprints: none recorded
    report = write_release([Fingerprinted(s, 1) for s in sequences], out, topology=topology, progress=False)
    assert report.resumed == [] and (out / INPUTS_NAME).is_file()


def test_sources_without_fingerprints_resume_by_take_id():
    topology = make_topology()
    sources = small_sources(1, 1)
    assert inputs_fingerprint(sources, topology) is None
    assert inputs_fingerprint([Fingerprinted(sources[0].sequence, 1)], topology) != inputs_fingerprint(
        [Fingerprinted(sources[0].sequence, 2)], topology
    )


def test_builders_no_longer_touch_the_writers_staging():
    from pathlib import Path

    import builders.build

    text = Path(builders.build.__file__).read_text(encoding="utf-8")
    assert "STAGING" not in text and ".staging" not in text and "fingerprint(" not in text
