"""Where things are found: the authors' sample take and the user's cache."""

from __future__ import annotations

import os
from pathlib import Path

#: Environment variable that points at a copy of the authors' sample take.
FIXTURES_ENV = "MMFACE4D_FIXTURES"

REPO_ROOT = Path(__file__).resolve().parent.parent

#: Where a user gets the authors' sample take, and how to point this package at it (said wherever it is absent).
SAMPLE_SOURCE = (
    "the authors' sample take 000337 is the test_data/ folder of their code repository, "
    "https://github.com/wuhaozhe/4d_reconstruction (MMFace4D, Wu et al., https://arxiv.org/abs/2303.09797; "
    "that repository states no licence, so its files stay the authors': use them for research, cite the paper, "
    "do not redistribute them); clone it and point at that folder with "
    f"{FIXTURES_ENV}=/path/to/4d_reconstruction/test_data or `mmface4d quickstart --fixtures DIR`"
)


def official_sample_candidates() -> list[Path]:
    """Folders searched, in order, for the authors' sample take (DESIGN.md, Fixture location)."""
    candidates = []
    if os.environ.get(FIXTURES_ENV):
        candidates.append(Path(os.environ[FIXTURES_ENV]))
    candidates.append(REPO_ROOT.parent / "shared" / "fixtures" / "official_sample")
    return candidates


def official_sample_dir() -> Path | None:
    """The folder holding the authors' sample take, or None when it is nowhere to be found."""
    for path in official_sample_candidates():
        if (path / "reconstruct_filt_0.nut").is_file():
            return path
    return None


def cache_dir() -> Path:
    """The package's cache folder: `$MMFACE4D_CACHE`, else `$HF_HOME/mmface4d`, else ~/.cache/huggingface/mmface4d."""
    if os.environ.get("MMFACE4D_CACHE"):
        return Path(os.environ["MMFACE4D_CACHE"])
    hf_home = os.environ.get("HF_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "huggingface")
    return Path(hf_home) / "mmface4d"
