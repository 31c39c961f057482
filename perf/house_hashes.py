"""Byte-identity check for refactors: sha256 of every file a synthetic build, a fixture-take build,
a submission and its scored report produce, printed as JSON ({relative path: sha256}).

Run it before and after a change that must not alter behaviour and compare the two outputs:

    .venv/bin/python perf/house_hashes.py > before.json   # on the old commit
    .venv/bin/python perf/house_hashes.py > after.json    # on the new commit
    diff before.json after.json

Everything is written under one fixed folder (argument 1, default $TMPDIR/mmface4d-house-hashes; emptied
first) with relative paths, because build reports and benchmark reports record the paths they were given.
The fixture-take build needs the authors' sample take (found as the tests find it: $MMFACE4D_FIXTURES,
else ../shared/fixtures/official_sample); without it that part is left out and named under "skipped".
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from mmface4d_datasets.paths import official_sample_dir


def mmface4d(work: Path, *args) -> None:
    out = subprocess.run([sys.executable, "-m", "mmface4d_datasets", *map(str, args)], capture_output=True, text=True, cwd=work)
    if out.returncode != 0:
        raise SystemExit(f"mmface4d {' '.join(map(str, args))} failed ({out.returncode}):\n{out.stderr}")


def tree_hashes(folder: Path, label: str) -> dict[str, str]:
    return {
        f"{label}/{p.relative_to(folder).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def main() -> None:
    hashes: dict[str, str] = {}
    skipped: list[str] = []
    work = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.gettempdir()) / "mmface4d-house-hashes"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        synthetic = Path("synthetic")
        mmface4d(work, "build", "synthetic", "--out", synthetic, "--subjects", 4, "--sentences", 2, "--vertices", 500, "--quiet")
        hashes |= tree_hashes(work / synthetic, "synthetic")

        bench = Path("bench")
        mmface4d(work, "bench", "run", "--model", "static", "--data", synthetic, "--out", bench, "--bootstrap", 100, "--quiet")
        hashes |= tree_hashes(work / bench, "bench-run")

        fixture = official_sample_dir()
        if fixture is None:
            skipped.append("fixture-take build: no official_sample fixture")
        else:
            manifest = work / "manifest.csv"
            manifest.write_text("take_id,subject_id,sentence_id,text,gender,age\n000337,S001,000001,,,\n", encoding="utf-8")
            built = Path("fixture")
            mmface4d(work, "build", "release", fixture.resolve(), "--out", built, "--manifest", "manifest.csv", "--quiet")
            hashes |= tree_hashes(work / built, "fixture")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"files": len(hashes), "skipped": skipped, "sha256": hashes}, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
