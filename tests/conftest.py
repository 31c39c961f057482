"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmface4d_datasets.paths import official_sample_candidates, official_sample_dir


@pytest.fixture(scope="session")
def official_sample() -> Path:
    """The authors' sample take (read in place, never copied into the repository)."""
    path = official_sample_dir()
    if path is None:
        where = ", ".join(str(p) for p in official_sample_candidates())
        pytest.skip(f"the authors' sample take is absent (looked in: {where}); set MMFACE4D_FIXTURES")
    return path
