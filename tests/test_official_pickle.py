"""The restricted unpickler: numpy arrays and plain data load, everything else is refused unexecuted."""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.safe_pickle import UnsafePickleError, load, load_array, loads


class _WritesAFile:
    """Unpickling this with plain pickle would run os.system and create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class _Evaluates:
    def __reduce__(self):
        return (eval, ("__import__('os').getpid()",))


class _OpensAFile:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_hostile_pickle_is_refused_and_never_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "000001_1.pkl"
    path.write_bytes(pickle.dumps(_WritesAFile(marker)))
    # the payload really is live: plain pickle would have created the marker
    assert b"system" in path.read_bytes()
    with pytest.raises(UnsafePickleError, match=r"000001_1\.pkl: refused to unpickle.*(posix|os)\.system"):
        load(path)
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_other_hostile_globals_are_refused(tmp_path, protocol):
    marker = tmp_path / "created"
    # protocols 0-2 spell the builtins module "__builtin__" (Python 2's name)
    for payload, global_name in [(_Evaluates(), r"(builtins|__builtin__)\.eval"), (_OpensAFile(marker), r"io\.open")]:
        data = pickle.dumps(payload, protocol=protocol)
        with pytest.raises(UnsafePickleError, match=global_name):
            loads(data, source="hostile.pkl")
    assert not marker.exists()


def test_hostile_object_hidden_inside_an_object_array_is_refused(tmp_path):
    marker = tmp_path / "inside"
    hidden = np.empty(2, dtype=object)
    hidden[0] = 1.0
    hidden[1] = _WritesAFile(marker)
    with pytest.raises(UnsafePickleError, match="system"):
        loads(pickle.dumps(hidden), source="nested.pkl")
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_numpy_arrays_and_scalars_load_for_every_protocol(protocol):
    array = np.arange(24, dtype=np.float64).reshape(2, 3, 4) / 7
    back = loads(pickle.dumps(array, protocol=protocol))
    assert type(back) is np.ndarray and back.dtype == array.dtype and np.array_equal(back, array)
    fortran = np.asfortranarray(array[:, :, :3])
    assert np.array_equal(loads(pickle.dumps(fortran, protocol=protocol)), fortran)
    scalar = loads(pickle.dumps(np.float32(2.5), protocol=protocol))
    assert scalar == np.float32(2.5) and scalar.dtype == np.float32
    data = loads(pickle.dumps({"points": array, "names": ["a", "b"], "n": 3}, protocol=protocol))
    assert np.array_equal(data["points"], array) and data["names"] == ["a", "b"]


def test_numpy_1_names_are_admitted():
    # numpy 1.x writes numpy.core.multiarray._reconstruct; numpy 2 writes numpy._core...
    data = pickle.dumps(np.arange(5, dtype=np.int16), protocol=2)
    old_style = data.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
    assert b"numpy.core.multiarray" in old_style
    assert np.array_equal(loads(old_style), np.arange(5))


def test_corrupt_and_missing_pickles_are_named(tmp_path):
    data = pickle.dumps(np.arange(100.0))
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(FormatError, match=r"cut\.pkl: not a readable pickle"):
        load(path)
    with pytest.raises(FormatError, match=r"none\.pkl: pickle file is missing"):
        load(tmp_path / "none.pkl")


def test_out_of_band_buffers_are_a_format_error():
    buffers = []
    data = pickle.dumps(np.arange(10.0), protocol=5, buffer_callback=buffers.append)
    with pytest.raises(FormatError, match="oob.pkl"):
        loads(data, source="oob.pkl")


def test_load_array_refuses_what_is_not_a_numeric_array(tmp_path):
    cases = {
        "dict.pkl": {"a": 1},
        "strings.pkl": np.array(["a", "b"]),
        "ragged.pkl": [(1, 2, 3), (4, 5)],
        "objects.pkl": np.array([1, "x"], dtype=object),
    }
    for name, obj in cases.items():
        (tmp_path / name).write_bytes(pickle.dumps(obj))
        with pytest.raises(FormatError, match=name.replace(".", r"\.")):
            load_array(tmp_path / name)


def test_fixture_triangles_load_without_trimesh(official_sample):
    # bfm_faces.pkl is a pickled trimesh TrackedArray: it must come back as a plain array, with
    # trimesh never imported (checked in a fresh interpreter).
    code = (
        "import sys, json; from mmface4d_datasets.safe_pickle import load_array;"
        f"a = load_array({str(official_sample / 'bfm_faces.pkl')!r});"
        "print(json.dumps([type(a).__name__, str(a.dtype), list(a.shape), int(a.min()), int(a.max()),"
        " 'trimesh' in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == ["ndarray", "int64", [70789, 3], 0, 35708, False]


def test_fixture_mediapipe_faces_are_plain_tuples(official_sample):
    raw = load(official_sample / "faces.pkl")
    assert isinstance(raw, list) and isinstance(raw[0], tuple)
    faces = load_array(official_sample / "faces.pkl", kinds="iu")
    assert faces.shape == (854, 3) and faces.min() >= 0 and faces.max() < 468


def test_restricted_unpickler_matches_plain_pickle_on_the_fixture_landmarks(official_sample):
    data = (official_sample / "000337_1.pkl").read_bytes()
    ours = loads(data)
    # comparing against plain pickle is safe here only because the file is the authors' known sample
    # and our restricted loader has just read it without refusing any global
    reference = pickle.Unpickler(io.BytesIO(data)).load()
    assert ours.dtype == np.float64 and ours.shape == (67, 98, 2)
    assert np.array_equal(ours, reference)
