"""MMFace4D core: formats, face models, codec, synthetic data, releases and the loader.

Importing this package stays light: torch, transformers, matplotlib and ray are imported
lazily by the functions that need them.
"""

from importlib import metadata as _metadata

try:
    __version__ = _metadata.version("mmface4d-datasets")
except _metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "load_dataset"]


def __getattr__(name):
    # `load_dataset` pulls in `datasets`/pyarrow: import it on first use only.
    if name == "load_dataset":
        from mmface4d_datasets.loading import load_dataset

        return load_dataset
    raise AttributeError(f"module 'mmface4d_datasets' has no attribute {name!r}")
