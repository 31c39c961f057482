"""Restricted unpickling: numpy arrays and plain Python data, nothing that runs code or grabs memory.

A pickle is a program: unpickling calls whatever global the file names (``os.system``,
``builtins.eval``, ...). The authors publish landmarks and triangles as pickles, so this module
reads them with the pure-Python :class:`pickle._Unpickler`, whose ``find_class`` admits only the
names numpy writes into pickles of ordinary arrays (numpy 1.x ``numpy.core`` and 2.x ``numpy._core``),
and hands out CHECKED stand-ins, never the numpy callables themselves:

- arrays, protocols 0-4: ``_reconstruct(numpy.ndarray, (0,), b"b")`` makes an EMPTY placeholder and
  the following BUILD opcode gives its state ``(1, shape, dtype, is_fortran, data bytes)``. Only that
  exact placeholder call is admitted (any other shape would be an uninitialised array: the 40-byte
  pickle that asks for 320 MB is refused here), and the array is made from the data bytes only
  when their length is exactly ``prod(shape) * dtype.itemsize`` (a declared size beyond the whole
  file is refused before anything is allocated). A placeholder never given its data is refused;
- ``numpy.ndarray`` is admitted only as that placeholder's type: called directly (the 34-byte pickle
  that yields an uninitialised array of heap contents) it is refused by name;
- arrays, protocol 5: ``_frombuffer(data, dtype, shape, order)``, with the same exact-size rule;
- numpy scalars: ``scalar(dtype, data)`` with exactly ``dtype.itemsize`` data bytes;
- ``numpy.dtype(code, align, copy)`` and its BUILD state; arrays and scalars of dtypes holding
  Python objects are refused (their elements would be more pickled objects);
- ``_codecs.encode(text, "latin1")`` and ``bytes()`` (how protocol 2 stores ``bytes`` under
  Python 3; ``bytes`` only without arguments, the data of an empty array).

``trimesh.caching.TrackedArray`` (a numpy subclass that trimesh pickles, e.g. the authors'
``bfm_faces.pkl``) is read as a plain ``numpy.ndarray`` with the same data: trimesh is never imported.
Lists, tuples, dicts, strings and numbers are built by the pickle opcodes themselves and need no
global, so they are admitted (the authors' ``faces.pkl`` is a list of tuples). Any other global,
and the opcodes that make instances of classes (NEWOBJ), raise :class:`UnsafePickleError` naming
the file and what was asked, before anything it names is imported or called.
"""

from __future__ import annotations

import io
import math
import os
import pickle
from pathlib import Path

from mmface4d_datasets.errors import FormatError


class UnsafePickleError(FormatError):
    """A pickle asked for something outside the numpy-array allow-list; nothing was executed."""


def _numpy_core_function(submodule: str, name: str):
    """``numpy._core.<submodule>.<name>`` on numpy 2, ``numpy.core.<submodule>.<name>`` on numpy 1.x."""
    import importlib

    try:
        module = importlib.import_module(f"numpy._core.{submodule}")
    except ImportError:
        module = importlib.import_module(f"numpy.core.{submodule}")
    return getattr(module, name)


class _ArrayType:
    """Stands for ``numpy.ndarray`` (or a numpy subclass read as one) inside a pickle: it may only be
    the type argument of the placeholder ``_reconstruct``; calling it is refused."""

    def __init__(self, unpickler: "RestrictedUnpickler", name: str):
        self.unpickler, self.name = unpickler, name

    def __call__(self, *args, **kwargs):
        raise self.unpickler.refuse(
            f"it calls {self.name} directly with {_short(args)}, which would make an uninitialised array "
            "(numpy's own pickles only name it as the type of an empty placeholder)"
        )


class _PendingArray:
    """The empty placeholder of ``_reconstruct``; BUILD turns it into the real array."""

    def __init__(self, name: str):
        self.name = name


def _short(value, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_shape(shape) -> bool:
    return isinstance(shape, tuple) and all(type(n) is int and n >= 0 for n in shape)


class RestrictedUnpickler(pickle._Unpickler):
    """An unpickler that builds only numpy arrays, scalars, dtypes and plain data (module docstring).

    ``source`` names the file (or record) in error messages; ``size`` is the size of the whole
    pickle in bytes (no array may declare more data than that). Python 2 pickles are read with
    ``encoding="latin1"``, the setting numpy documents for its arrays.
    """

    def __init__(self, file, *, source: str = "<pickle>", size: int | None = None):
        super().__init__(file, encoding="latin1")
        self.source = source
        self.size = size
        self.pending: list[_PendingArray] = []

    # -- refusals
    def refuse(self, why: str) -> UnsafePickleError:
        return UnsafePickleError(f"{self.source}: refused to unpickle: {why}")

    def _check_data(self, what: str, data, shape, dtype):
        """The exact-size rule; returns the data as bytes-like. Raises UnsafePickleError."""
        import numpy as np

        if not _is_shape(shape):
            raise self.refuse(f"{what} declares the shape {_short(shape)}, not a tuple of whole numbers >= 0")
        if not isinstance(dtype, np.dtype):
            raise self.refuse(f"{what} declares the dtype {_short(dtype)}, not a numpy dtype")
        if dtype.hasobject:
            raise self.refuse(f"{what} has dtype {dtype}, which holds Python objects (only plain data is admitted)")
        needed = math.prod(shape) * dtype.itemsize
        if self.size is not None and needed > self.size:
            raise self.refuse(
                f"{what} declares shape {shape} of {dtype}, {needed} bytes, more than the whole "
                f"pickle holds ({self.size} bytes); nothing was allocated"
            )
        if isinstance(data, str):  # Python 2 pickles read with encoding="latin1"
            data = data.encode("latin1")
        elif isinstance(data, memoryview):  # protocol 5's READONLY_BUFFER wraps in-band data so
            data = data.tobytes()
        if not isinstance(data, (bytes, bytearray)):
            raise self.refuse(f"{what} gives its data as {type(data).__name__}, not bytes")
        if len(data) != needed:
            raise self.refuse(f"{what} holds {len(data)} data bytes, but its shape {shape} and dtype {dtype} need exactly {needed}")
        return data

    # -- the admitted globals, as checked stand-ins
    def _reconstruct(self, subtype, shape, code):
        if not isinstance(subtype, _ArrayType):
            raise self.refuse(f"_reconstruct is asked for the type {_short(subtype)}, not numpy.ndarray")
        if shape != (0,) or code not in (b"b", "b"):
            raise self.refuse(
                f"_reconstruct is asked for shape {_short(shape)} with dtype {_short(code)}; numpy's own pickles "
                "ask for an empty (0,) placeholder and give the data afterwards (any other shape is an "
                "uninitialised array)"
            )
        placeholder = _PendingArray(subtype.name)
        self.pending.append(placeholder)
        return placeholder

    def _frombuffer(self, data, dtype, shape, order="C"):
        import numpy as np

        if order not in ("C", "F"):
            raise self.refuse(f"_frombuffer is asked for order {_short(order)}")
        data = self._check_data("a protocol-5 array", data, shape, dtype)
        return np.frombuffer(data, dtype=dtype, count=math.prod(shape)).reshape(shape, order=order)

    def _scalar(self, dtype, data=None):
        import numpy as np

        data = self._check_data("a numpy scalar", data, (), dtype)
        return np.frombuffer(data, dtype=dtype, count=1).reshape(())[()]

    def _dtype(self, code, align=False, copy=True):
        import numpy as np

        if not isinstance(code, str) or not isinstance(align, (bool, int)) or not isinstance(copy, (bool, int)):
            raise self.refuse(f"numpy.dtype is called with {_short((code, align, copy))}, not a type code")
        try:
            return np.dtype(code, bool(align), bool(copy))
        except (TypeError, ValueError) as exc:
            raise self.refuse(f"numpy.dtype({code!r}) is not a dtype ({exc})") from None

    @staticmethod
    def _codecs_encode(text, encoding="utf-8"):
        if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
            raise UnsafePickleError(f"_codecs.encode is called with {_short((text, encoding))}")
        return text.encode("latin1")

    def _empty_bytes(self, *args):
        if args:
            raise self.refuse(f"it calls bytes with {_short(args)} (numpy pickles only call bytes() for no data)")
        return b""

    def find_class(self, module: str, name: str):
        core = module.removeprefix("numpy._core.").removeprefix("numpy.core.")
        if module.startswith(("numpy._core.", "numpy.core.")):
            if (core, name) == ("multiarray", "_reconstruct"):
                return self._reconstruct
            if (core, name) == ("multiarray", "scalar"):
                return self._scalar
            if (core, name) == ("numeric", "_frombuffer"):
                return self._frombuffer
        if (module, name) == ("numpy", "ndarray"):
            return _ArrayType(self, "numpy.ndarray")
        if (module, name) == ("trimesh.caching", "TrackedArray"):
            return _ArrayType(self, "trimesh.caching.TrackedArray")
        if (module, name) == ("numpy", "dtype"):
            return self._dtype
        if (module, name) == ("_codecs", "encode"):
            return self._codecs_encode
        if (module, name) in (("__builtin__", "bytes"), ("builtins", "bytes")):
            return self._empty_bytes
        raise self.refuse(
            f"it asks for the global {module}.{name}, which is not a numpy array constructor "
            "(only numpy arrays and plain data are admitted)"
        )

    def persistent_load(self, pid):
        raise self.refuse(f"it uses persistent ids ({pid!r})")

    # -- opcodes
    def _load_build(self):
        import numpy as np

        state = self.stack.pop()
        inst = self.stack[-1]
        if isinstance(inst, _PendingArray):
            self.stack[-1] = array = self._build_array(inst, state)
            for key, value in list(self.memo.items()):
                if value is inst:
                    self.memo[key] = array
            self.pending.remove(inst)
            return
        if isinstance(inst, np.dtype) and isinstance(state, tuple):
            try:
                inst.__setstate__(state)
            except (TypeError, ValueError) as exc:
                raise self.refuse(f"a numpy dtype has an invalid state ({exc})") from None
            return
        raise self.refuse(f"it sets the state of a {type(inst).__name__}, which numpy array pickles never do")

    def _build_array(self, placeholder: _PendingArray, state):
        import numpy as np

        if not isinstance(state, tuple) or len(state) not in (4, 5) or (len(state) == 5 and state[0] != 1):
            raise self.refuse(f"the state of a {placeholder.name} is {_short(state)}, not (1, shape, dtype, is_fortran, data)")
        shape, dtype, fortran, data = state[-4:]
        if not isinstance(fortran, (bool, int)):
            raise self.refuse(f"the state of a {placeholder.name} gives is_fortran={_short(fortran)}")
        data = self._check_data(f"a {placeholder.name}", data, shape, dtype)
        flat = np.frombuffer(data, dtype=dtype, count=math.prod(shape))
        return flat.reshape(shape, order="F" if fortran else "C").copy(order="K")

    def _load_newobj(self):
        raise self.refuse("it creates an object of a class (NEWOBJ), which numpy array pickles never do")

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = _load_build
    dispatch[pickle.NEWOBJ[0]] = _load_newobj
    dispatch[pickle.NEWOBJ_EX[0]] = _load_newobj

    def load(self):
        result = super().load()
        if self.pending:
            raise self.refuse(
                f"it makes a {self.pending[0].name} placeholder and never gives its data (the result would be an uninitialised array)"
            )
        _refuse_placeholders(result, self)
        return result


def _refuse_placeholders(result, unpickler: RestrictedUnpickler) -> None:
    """Refuse a result that still holds a placeholder (caught in a list before its data came)."""
    seen, todo = set(), [result]
    while todo:
        item = todo.pop()
        if isinstance(item, _PendingArray):
            raise unpickler.refuse(f"it holds a {item.name} placeholder that never became an array")
        if isinstance(item, (list, tuple, set, frozenset, dict)) and id(item) not in seen:
            seen.add(id(item))
            todo.extend(item.items() if isinstance(item, dict) else item)


def loads(data: bytes, source: str = "<bytes>"):
    """Unpickle ``data`` with :class:`RestrictedUnpickler`.

    Returns what the pickle builds: numpy arrays/scalars/dtypes and plain Python data.
    Raises UnsafePickleError for a forbidden global and FormatError (naming ``source``) for a
    corrupt or truncated pickle.
    """
    try:
        return RestrictedUnpickler(io.BytesIO(data), source=source, size=len(data)).load()
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
