"""Shared test fixtures."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmface4d_datasets.paths import SAMPLE_SOURCE, official_sample_candidates, official_sample_dir


@pytest.fixture(scope="session", autouse=True)
def library_messages_on_stderr():
    """Library notes and warnings (module loggers) on stderr, as the `mmface4d` command shows them, so that
    tests calling the library directly see them where the command's users do (capsys / capfd)."""
    from mmface4d_datasets.cli import log_to_stderr

    log_to_stderr()


@pytest.fixture(scope="session")
def official_sample() -> Path:
    """The authors' sample take (read in place, never copied into the repository)."""
    path = official_sample_dir()
    if path is None:
        where = ", ".join(str(p) for p in official_sample_candidates())
        pytest.skip(f"the authors' sample take is absent (looked in: {where}); {SAMPLE_SOURCE}")
    return path


@pytest.fixture(scope="session")
def mini_release(tmp_path_factory):
    """(folder, hf_home): the mini release, built ONCE per session from an empty cache under a temporary
    HF_HOME with the Hub switched off (about 10-20 s on 2 busy cores); tests read it, never write it."""
    home = tmp_path_factory.mktemp("hf_home")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HOME", str(home))
        patch.delenv("MMFACE4D_CACHE", raising=False)
        patch.setenv("HF_HUB_OFFLINE", "1")
        from mmface4d_datasets.release.mini import ensure_mini_release

        folder = ensure_mini_release()
    return folder, home
