"""Optional dependencies: a call that needs an extra says which one (pyproject.toml, [project.optional-dependencies])."""

from __future__ import annotations

import importlib

from mmface4d_datasets.errors import MMFace4DError


class MissingExtraError(MMFace4DError, ImportError):
    """A feature needs a package of an extra that is not installed; the message names the extra."""


def require(module: str, extra: str, what: str):
    """Import `module`, or raise `MissingExtraError` saying that `what` needs the extra `extra`."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingExtraError(
            f"{what} needs the Python package {module.split('.')[0]!r}, which is not installed here: "
            f"install the {extra!r} extra: pip install 'mmface4d-datasets[{extra}]'"
        ) from exc
