"""Restricted unpickling: numpy arrays and plain Python data, nothing that runs code.

A pickle is a program: unpickling calls whatever global the file names (``os.system``,
``builtins.eval``, ...). The authors publish landmarks and triangles as pickles, so this module
reads them with a :class:`pickle.Unpickler` whose ``find_class`` admits only the few numpy
functions that rebuild arrays, for numpy 1.26 (``numpy.core``) and 2.x (``numpy._core``):

- ``numpy[._]core.multiarray._reconstruct`` and ``numpy.ndarray`` (arrays, protocols 2-4),
- ``numpy[._]core.numeric._frombuffer`` (arrays, protocol 5),
- ``numpy[._]core.multiarray.scalar`` (numpy scalars), ``numpy.dtype``,
- ``_codecs.encode`` (how protocol 2 stores ``bytes`` under Python 3; it only encodes a string).

``trimesh.caching.TrackedArray`` (a numpy subclass that trimesh pickles, e.g. the authors'
``bfm_faces.pkl``) is read as a plain ``numpy.ndarray`` with the same data: trimesh is never imported.
Lists, tuples, dicts, strings and numbers are built by the pickle opcodes themselves and need no
global, so they are admitted (the authors' ``faces.pkl`` is a list of tuples).
Any other global raises :class:`UnsafePickleError` naming the file and the global, before anything
it names is imported or called.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path

from mmface4d_datasets.errors import FormatError


class UnsafePickleError(FormatError):
    """A pickle asked for a global outside the numpy-array allow-list; nothing was executed."""


def _numpy_core_function(submodule: str, name: str):
    """``numpy._core.<submodule>.<name>`` on numpy 2, ``numpy.core.<submodule>.<name>`` on numpy 1.x.

    Pickles written under either numpy name either path; both map to the function this numpy has
    (importing ``numpy.core`` on numpy 2 would only add a deprecation warning).
    """
    import importlib

    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


def _numpy_attribute(name: str):
    import numpy

    return getattr(numpy, name)


def _codecs_encode():
    import _codecs

    return _codecs.encode


# (module, name) -> zero-argument resolver of the object the pickle may use under that name.
_ALLOWED = {}
for _core in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_core}.multiarray", "_reconstruct")] = lambda: _numpy_core_function("multiarray", "_reconstruct")
    _ALLOWED[(f"{_core}.multiarray", "scalar")] = lambda: _numpy_core_function("multiarray", "scalar")
    _ALLOWED[(f"{_core}.numeric", "_frombuffer")] = lambda: _numpy_core_function("numeric", "_frombuffer")
_ALLOWED[("numpy", "ndarray")] = lambda: _numpy_attribute("ndarray")
_ALLOWED[("numpy", "dtype")] = lambda: _numpy_attribute("dtype")
# numpy subclasses rebuilt as plain arrays (their extra behaviour is not wanted, their code not run)
_ALLOWED[("trimesh.caching", "TrackedArray")] = lambda: _numpy_attribute("ndarray")
_ALLOWED[("_codecs", "encode")] = _codecs_encode

#: The globals a pickle may name, as "module.name" strings (for documentation and messages).
ALLOWED_GLOBALS = tuple(sorted(f"{module}.{name}" for module, name in _ALLOWED))


class RestrictedUnpickler(pickle.Unpickler):
    """A :class:`pickle.Unpickler` that resolves only the globals in :data:`ALLOWED_GLOBALS`.

    ``source`` names the file (or record) in error messages. Python 2 pickles are read with
    ``encoding="latin1"``, the setting numpy documents for its arrays.
    """

    def __init__(self, file, *, source: str = "<pickle>"):
        super().__init__(file, encoding="latin1")
        self.source = source

    def find_class(self, module: str, name: str):
        resolver = _ALLOWED.get((module, name))
        if resolver is None:
            raise UnsafePickleError(
                f"{self.source}: refused to unpickle: it asks for the global {module}.{name}, "
                "which is not a numpy array constructor (only numpy arrays and plain data are admitted)"
            )
        return resolver()

    def persistent_load(self, pid):
        raise UnsafePickleError(f"{self.source}: refused to unpickle: it uses persistent ids ({pid!r})")


def loads(data: bytes, source: str = "<bytes>"):
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Returns what the pickle builds: numpy arrays/scalars/dtypes and plain Python data.
    Raises UnsafePickleError for a forbidden global and FormatError (naming ``source``) for a
    corrupt or truncated pickle.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=source).load()
    except UnsafePickleError:
        raise
    except Exception as exc:  # corrupt streams raise many types (UnpicklingError, EOFError, ValueError, ...)
        raise FormatError(f"{source}: not a readable pickle: {type(exc).__name__}: {exc}") from exc


def load(path: str | os.PathLike):
    """Unpickle the file at ``path`` with :class:`RestrictedUnpickler` (see :func:`loads`)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise FormatError(f"{path}: pickle file is missing") from None
    return loads(data, source=str(path))


def load_array(path: str | os.PathLike, kinds: str = "biuf"):
    """Load a pickled numpy array (or a nested list/tuple of numbers) as a numpy array.

    ``kinds`` lists the accepted dtype kinds (numpy's ``dtype.kind``: b bool, i/u integers,
    f floats); object, string and structured arrays are refused, as are ragged nested lists.
    Raises UnsafePickleError / FormatError naming the file.
    """
    import numpy as np

    obj = load(path)
    if isinstance(obj, np.ndarray):
        array = obj
    elif isinstance(obj, (list, tuple)):
        try:
            array = np.asarray(obj)
        except ValueError as exc:
            raise FormatError(f"{path}: pickled sequence is not a rectangular array: {exc}") from exc
    else:
        raise FormatError(f"{path}: pickle holds a {type(obj).__name__}, expected a numpy array")
    if array.dtype.kind not in kinds:
        raise FormatError(f"{path}: pickled array has dtype {array.dtype}, expected one of kinds {kinds!r}")
    return array
