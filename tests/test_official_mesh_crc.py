"""FFV1 slice CRCs of `.nut` mesh files: ours carry them and a changed byte is a named error; the authors'
files (FFV1 version 1, no CRC) keep working."""

from __future__ import annotations

import numpy as np
import pytest

from mmface4d_datasets import official
from mmface4d_datasets.errors import FormatError


def _flip_middle_byte(path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10
    path.write_bytes(bytes(data))


def test_bit_flip_in_our_file_is_a_named_checksum_error(tmp_path):
    rng = np.random.default_rng(0)
    vertices = (rng.normal(size=(6, 50, 3)) * 0.05).astype(np.float32)
    prefix = tmp_path / "000001_filt"
    official.write_mesh_sequence(prefix, vertices)
    clean = official.read_mesh_sequence(prefix, 50)
    official.check_slice_crcs(tmp_path / "000001_filt_1.nut", 50)  # a clean file passes
    _flip_middle_byte(tmp_path / "000001_filt_1.nut")
    with pytest.raises(official.ChecksumError, match=r"000001_filt_1\.nut: FFV1 slice checksum mismatch"):
        official.read_mesh_sequence(prefix, 50)
    with pytest.raises(FormatError, match=r"000001_filt_1\.nut"):
        official.read_quantised_axis(tmp_path / "000001_filt_1.nut", 50)
    assert clean.shape == (6, 50, 3)
    official.read_quantised_axis(tmp_path / "000001_filt_0.nut", 50)  # the other axes are untouched


def test_authors_files_have_no_crc_and_still_read(official_sample):
    take = official.read_take(official_sample)
    for path in official.mesh_axis_paths(take.mesh_prefix):
        official.check_slice_crcs(path, 35709)  # FFV1 version 1: nothing to check, nothing reported
    assert official.read_mesh_sequence(take.mesh_prefix, 35709).shape == (67, 35709, 3)
