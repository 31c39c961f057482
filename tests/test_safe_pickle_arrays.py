"""The restricted unpickler admits arrays, not memory: hand-made pickles that make uninitialised or
huge arrays are refused by name; numpy's own pickles of ordinary arrays and the authors' landmark
pickles still load; landmarks must agree with their take."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from mmface4d_datasets import official
from mmface4d_datasets.errors import FormatError
from mmface4d_datasets.safe_pickle import UnsafePickleError, load, loads

#: numpy.ndarray((4096,), "d") called directly: 32 KB of uninitialised heap memory, in 34 bytes.
UNINITIALISED_34 = b"\x80\x02cnumpy\nndarray\n((I4096\ntS'd'\ntR."
#: numpy.ndarray((320000000,), "u1"): a 320 MB allocation, in 40 bytes.
ALLOCATES_320MB_40 = b"\x80\x02cnumpy\nndarray\n((I320000000\ntS'u1'\ntR."
#: _reconstruct(ndarray, (40000000,), "b") and no data: an uninitialised 40 MB array.
RECONSTRUCT_UNINITIALISED = b"cnumpy.core.multiarray\n_reconstruct\n(cnumpy\nndarray\n(I40000000\ntS'b'\ntR."


def test_the_hand_made_pickles_are_live_under_plain_pickle():
    # what today's unpickler let through: plain pickle shows what each payload does
    assert len(UNINITIALISED_34) == 34 and len(ALLOCATES_320MB_40) == 40
    small = pickle.loads(UNINITIALISED_34)
    assert small.shape == (4096,) and small.nbytes == 32768
    big = pickle.loads(ALLOCATES_320MB_40)
    assert big.nbytes == 320_000_000
    del big
    assert pickle.loads(RECONSTRUCT_UNINITIALISED).nbytes == 40_000_000


@pytest.mark.parametrize(
    "data, name",
    [
        (UNINITIALISED_34, r"it calls numpy\.ndarray directly with \(\(4096,\), 'd'\)"),
        (ALLOCATES_320MB_40, r"it calls numpy\.ndarray directly with \(\(320000000,\), 'u1'\)"),
        (RECONSTRUCT_UNINITIALISED, r"_reconstruct is asked for shape \(40000000,\)"),
    ],
)
def test_uninitialised_and_huge_arrays_are_refused_by_name(data, name):
    with pytest.raises(UnsafePickleError, match=r"hostile\.pkl: refused to unpickle: " + name):
        loads(data, source="hostile.pkl")


def test_the_same_through_a_file_and_newobj(tmp_path):
    path = tmp_path / "000001_1.pkl"
    path.write_bytes(ALLOCATES_320MB_40)
    with pytest.raises(UnsafePickleError, match=r"000001_1\.pkl: refused.*numpy\.ndarray directly"):
        official.read_landmarks(path)
    newobj = b"\x80\x02cnumpy\nndarray\nJ\x00\x00\x00\x01\x85\x81."  # ndarray.__new__(ndarray, 2**24)
    with pytest.raises(UnsafePickleError, match=r"NEWOBJ"):
        loads(newobj, source="n.pkl")


def _shape_tampered(shape_ops: bytes) -> bytes:
    data = pickle.dumps(np.arange(6, dtype=np.float64).reshape(2, 3), protocol=2)
    assert data.count(b"K\x02K\x03\x86") == 1
    return data.replace(b"K\x02K\x03\x86", shape_ops)


def test_data_bytes_must_match_the_declared_shape_and_dtype():
    with pytest.raises(UnsafePickleError, match=r"holds 48 data bytes, but its shape \(2, 4\) and dtype float64 need exactly 64"):
        loads(_shape_tampered(b"K\x02K\x04\x86"), source="t.pkl")
    with pytest.raises(UnsafePickleError, match=r"holds 48 data bytes, .*\(1, 3\).* need exactly 24"):
        loads(_shape_tampered(b"K\x01K\x03\x86"), source="t.pkl")


def test_a_declared_size_beyond_the_file_is_refused_before_allocating():
    huge = _shape_tampered(b"J\xff\xff\xff\x7fJ\xff\xff\xff\x7f\x86")  # (2**31-1)**2 float64: 3.7e19 bytes
    with pytest.raises(UnsafePickleError, match=r"more than the whole pickle holds \(\d+ bytes\); nothing was allocated"):
        loads(huge, source="t.pkl")


def test_a_placeholder_that_never_gets_its_data_is_refused():
    empty = b"\x80\x02cnumpy.core.multiarray\n_reconstruct\ncnumpy\nndarray\nK\x00\x85C\x01b\x87R."
    with pytest.raises(UnsafePickleError, match=r"placeholder and never gives its data"):
        loads(empty, source="p.pkl")


ORDINARY = {
    "float64": np.linspace(-1, 1, 24).reshape(2, 3, 4),
    "float32": np.arange(12, dtype=np.float32).reshape(3, 4) / 3,
    "float16": np.arange(5, dtype=np.float16),
    "int16": np.arange(-8, 8, dtype=np.int16),
    "uint8": np.arange(256, dtype=np.uint8),
    "int64 big-endian": np.arange(7, dtype=">i8"),
    "bool": np.array([True, False, True]),
    "complex64": np.array([1 + 2j, 3 - 4j], dtype=np.complex64),
    "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
    "strided view": np.arange(20.0).reshape(4, 5)[:, ::2],
    "0-d": np.array(2.5),
    "empty": np.zeros((0, 98, 2)),
    "structured": np.array([(1, 2.0)], dtype=[("a", "<i4"), ("b", ">f8")]),
    "strings": np.array(["ab", "c"]),
}


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
@pytest.mark.parametrize("name", sorted(ORDINARY))
def test_numpys_own_pickles_of_ordinary_arrays_load(protocol, name):
    array = ORDINARY[name]
    back = loads(pickle.dumps(array, protocol=protocol), source=f"{name}.pkl")
    assert type(back) is np.ndarray and back.dtype == array.dtype and back.shape == array.shape
    assert np.array_equal(back, array)
    if name == "fortran":
        assert back.flags.f_contiguous and not back.flags.c_contiguous
    # the same array twice in one container is one object in the pickle (a memo reference)
    pair = loads(pickle.dumps([array, array, {"again": array}], protocol=protocol))
    assert all(type(a) is np.ndarray and np.array_equal(a, array) for a in (pair[0], pair[1], pair[2]["again"]))


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_numpy_scalars_load_and_object_scalars_do_not(protocol):
    for value in (np.float64(1.5), np.int8(-3), np.uint16(7), np.bool_(True)):
        back = loads(pickle.dumps(value, protocol=protocol))
        assert back == value and back.dtype == value.dtype
    with pytest.raises(UnsafePickleError):
        loads(pickle.dumps(np.array([1, None], dtype=object), protocol=protocol))


@pytest.mark.parametrize("camera", [0, 1, 2])
def test_the_fixture_landmark_pickles_still_load(official_sample, camera):
    path = official_sample / f"000337_{camera}.pkl"
    raw = load(path)
    assert type(raw) is np.ndarray and raw.dtype == np.float64 and raw.shape == (67, 98, 2)
    landmarks = official.read_landmarks(path)
    assert np.isfinite(landmarks).all() and np.array_equal(landmarks, raw)
    official.check_landmarks_agree(landmarks, 67, path)  # the mesh sequence has 67 frames too


def test_landmarks_must_have_98_or_68_points(tmp_path):
    for points in (98, 68):
        (tmp_path / f"ok{points}.pkl").write_bytes(pickle.dumps(np.zeros((3, points, 2))))
        assert official.read_landmarks(tmp_path / f"ok{points}.pkl").shape == (3, points, 2)
    (tmp_path / "five.pkl").write_bytes(pickle.dumps(np.zeros((3, 5, 2))))
    with pytest.raises(FormatError, match=r"five\.pkl: landmarks hold 5 points per frame, expected 98 \(WFLW\) or 68"):
        official.read_landmarks(tmp_path / "five.pkl")


def test_landmark_frames_must_match_the_mesh_sequence(tmp_path):
    landmarks = np.zeros((66, 98, 2))
    with pytest.raises(
        FormatError,
        match=r"x_1\.pkl: landmarks hold 66 frames, the take's mesh sequence 67; "
        r"they must have exactly as many",
    ):
        official.check_landmarks_agree(landmarks, 67, tmp_path / "x_1.pkl")
    official.check_landmarks_agree(landmarks, 67, tmp_path / "x_1.pkl", tolerance=1)


def test_a_take_whose_landmarks_disagree_with_its_meshes_is_not_built(tmp_path):
    from builders.build import build_release
    from mmface4d_datasets.errors import MMFace4DError
    from test_builders_support import small_take

    source = tmp_path / "src"
    small_take(source, "000001", frames=15)
    (source / "000001_1.pkl").write_bytes(pickle.dumps(np.zeros((14, 98, 2)), protocol=4))
    with pytest.raises(
        MMFace4DError,
        match=r"take 000001.*000001_1\.pkl: landmarks hold 14 frames, the take's "
        r"mesh sequence 15",
    ):
        build_release(source, tmp_path / "out", progress=False)
