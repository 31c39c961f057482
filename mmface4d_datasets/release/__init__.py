"""The release format: writer and reader together (DESIGN.md, A release).

- `schema`: `SourceSequence`, `SequenceSource`, `TopologyInfo`, format constants, the tables' schemas.
- `info`: `ReleaseInfo`, meta/info.json typed (`Release(path).info`).
- `writer.write_release(...)`: sources -> release folder (canonical frame, splits, shards, meta, card).
- `reader.Release(path)`: an opened release folder.
- `canonical`: subject templates and the canonical head frame. `splits`: the split rule.
- `card`: the dataset card. `validate`: `validate_release(path)` and `mmface4d validate`.

Submodules are imported on use so that `import mmface4d_datasets.release` stays light.
"""

from __future__ import annotations

__all__ = ["FORMAT_VERSION", "Release", "ReleaseInfo", "SourceSequence", "TopologyInfo", "write_release", "validate_release"]

_LAZY = {
    "FORMAT_VERSION": "schema",
    "SourceSequence": "schema",
    "SequenceSource": "schema",
    "InMemorySource": "schema",
    "CallableSource": "schema",
    "RawCapture": "schema",
    "TopologyInfo": "schema",
    "BuildReport": "schema",
    "write_release": "writer",
    "Release": "reader",
    "ReleaseInfo": "info",
    "validate_release": "validate",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"mmface4d_datasets.release.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module 'mmface4d_datasets.release' has no attribute {name!r}")
