"""The mini release: a small synthetic release built offline on first use and kept in the cache.

8 subjects x 3 sentences of the synthetic generator (seed 0) on the embedded model at 1,000
vertices, written by `write_release` (split seed 0: 7 train subjects and 1 test subject with
style references). Built under `cache_dir()/mini-<format>-<package version>` by one process at a
time (the O_CREAT|O_EXCL lock file of `mmface4d_datasets.output_folders`, which works on Linux,
macOS and Windows; other processes wait for it, a lock left by a killed process is taken over), in
a temporary folder renamed into place when complete, and reused afterwards.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

MINI_SUBJECTS = 8
MINI_SENTENCES = 3
MINI_VERTICES = 1000
MINI_SEED = 0


def mini_release_dir() -> Path:
    """Where the mini release lives in the cache (versioned by format and package)."""
    from mmface4d_datasets import __version__
    from mmface4d_datasets.paths import cache_dir
    from mmface4d_datasets.release.schema import FORMAT_VERSION

    return cache_dir() / f"mini-{FORMAT_VERSION}-{__version__}"


def mini_sources(subjects: int = MINI_SUBJECTS, sentences: int = MINI_SENTENCES, num_vertices: int = MINI_VERTICES, seed: int = MINI_SEED):
    """(sources, topology) of synthetic takes made in memory (each `load()` synthesises its take), through
    the one synthetic adapter (`synthetic_source`); the mini release has no `raw` cameras."""
    from mmface4d_datasets.release.synthetic_source import synthetic_sources

    return synthetic_sources(subjects=subjects, sentences=sentences, seed=seed, num_vertices=num_vertices, raw=False)


def ensure_mini_release(progress: bool = False) -> Path:
    """The mini release folder, built first if the cache does not hold a complete one."""
    from mmface4d_datasets.output_folders import FileLock

    target = mini_release_dir()
    if (target / "meta" / "info.json").is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = FileLock(target.parent / f".{target.name}.lock", what=f"the mini release {target}")
    lock.acquire(wait=True)  # another process may be building it: wait, then reuse its work
    try:
        if (target / "meta" / "info.json").is_file():
            return target
        from mmface4d_datasets.release.card import SYNTHETIC_CARD_INFO
        from mmface4d_datasets.release.writer import write_release

        building = target.parent / f".{target.name}.building"
        sources, topology = mini_sources()
        # `building` may hold the .staging of a killed build: the writer resumes it (same inputs) or discards it.
        write_release(
            sources,
            building,
            topology=topology,
            seed=MINI_SEED,
            progress=progress,
            card_info=SYNTHETIC_CARD_INFO
            | {
                "pretty_name": "MMFace4D mini (synthetic)",
                "summary": "A small synthetic release made by mmface4d-datasets for tests and examples: "
                "8 synthetic speakers x 3 Mandarin sentences, 1,000-vertex embedded face model.",
                "source": "the mmface4d synthetic generator (eSpeak NG speech, embedded face model), seed 0",
            },
        )
        if target.exists():
            shutil.rmtree(target)  # an incomplete folder without meta/info.json
        os.replace(building, target)
    finally:
        lock.release()
    return target
