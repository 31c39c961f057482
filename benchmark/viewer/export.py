"""`mmface4d view RELEASE --export DIR`: the viewer as a static folder any static host serves.

The folder holds exactly the URL paths of :mod:`benchmark.viewer.content` (relative links only, no
server logic). It is claimed with the house rule of :mod:`mmface4d_datasets.output_folders` (kind
``view``): a new or empty folder, or the viewer's own earlier export (whose files no longer wanted
are deleted; nothing else is touched). Each file is written to a temporary name and renamed.
"""

from __future__ import annotations

import os
from pathlib import Path

from benchmark.viewer.content import ViewerContent

KIND = "view"


def export_viewer(content: ViewerContent, out_dir: str | os.PathLike, *, progress: bool = False) -> dict:
    """Write every file of ``content`` under ``out_dir``; returns {"folder", "files", "bytes", "takes"}."""
    from mmface4d_datasets.files import atomic_write_bytes
    from mmface4d_datasets.output_folders import output_folder

    folder = Path(out_dir)
    ids = list(content.keys)
    with output_folder(folder, KIND, inputs=[content.release.path]) as out:
        total = 0
        written: list[Path] = []

        def write(path: str, data: bytes) -> None:
            nonlocal total
            target = folder / path
            out.will_write(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(target, data)
            written.append(target)
            total += len(data)

        for path in list(content.static) + ["data/takes.json", "data/topology.bin"]:
            write(path, content.get(path)[0])
        iterator = ids
        if progress:
            from tqdm import tqdm

            iterator = tqdm(ids, desc="exporting", unit="take")
        for sequence_id in iterator:
            for name, data in content.take(sequence_id).files.items():
                write(f"data/takes/{content.keys[sequence_id]}/{name}", data)
        out.remove_written(written, under=("index.html", "static/", "data/"))
    return {"folder": str(folder), "files": len(written), "bytes": total, "takes": len(ids)}
