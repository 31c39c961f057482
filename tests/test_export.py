"""`mmface4d export`: frames trimesh reads back with the same vertices, faces from every source."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import scipy.io
import trimesh

from mmface4d_datasets.cli import main
from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.export import OBJ_DECIMALS, export_sequence, frame_file_name, load_faces, parse_frames
from mmface4d_datasets.official import read_mesh_sequence, write_mesh_sequence
from mmface4d_datasets.output_folders import MARKER_NAME

BFM_VERTICES = 35709


def _load(path):
    # trimesh's OBJ loader drops vertices no face uses unless asked to keep the file's order
    return trimesh.load(path, process=False, maintain_order=True)


def test_fixture_frames_read_back_with_identical_vertices(tmp_path, official_sample, capsys):
    out = tmp_path / "meshes"
    code = main(
        [
            "export",
            str(official_sample / "reconstruct_filt"),
            "--num-vertices",
            str(BFM_VERTICES),
            "--faces",
            str(official_sample / "bfm_faces.pkl"),
            "--out",
            str(out),
            "--frames",
            "10:13",
        ]
    )
    assert code == 0
    assert "wrote 3 PLY files (frame_00010.ply .. frame_00012.ply, 70789 triangles each)" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == [MARKER_NAME, "frame_00010.ply", "frame_00011.ply", "frame_00012.ply"]
    vertices = read_mesh_sequence(official_sample / "reconstruct_filt", BFM_VERTICES)
    faces = load_faces(official_sample / "bfm_faces.pkl", BFM_VERTICES)
    for index in (10, 11, 12):
        mesh = _load(out / frame_file_name(index, "ply"))
        assert np.array_equal(mesh.vertices, vertices[index])  # float32 stored exactly, order kept
        assert np.array_equal(mesh.faces, faces)
    assert (out / "frame_00010.ply").read_bytes().startswith(b"ply\nformat binary_little_endian")


def test_obj_export_keeps_order_within_its_decimals(tmp_path):
    rng = np.random.default_rng(0)
    vertices = rng.normal(0, 0.1, (2, 30, 3)).astype(np.float32)
    faces = np.array([[0, 1, 2], [2, 3, 4], [29, 0, 5]])
    paths = export_sequence(vertices, faces, tmp_path / "obj", fmt="obj")
    assert [p.name for p in paths] == ["frame_00000.obj", "frame_00001.obj"]
    for index, path in enumerate(paths):
        mesh = _load(path)
        assert mesh.vertices.shape == (30, 3)
        assert np.abs(mesh.vertices - vertices[index]).max() <= 0.5 * 10.0**-OBJ_DECIMALS + 1e-12
        assert np.array_equal(mesh.faces, faces)
    assert not [p for p in (tmp_path / "obj").iterdir() if p.name.startswith(".") and p.name != MARKER_NAME]  # no temporaries left


def test_faces_from_every_source_agree(tmp_path, official_sample):
    from_pickle = load_faces(official_sample / "bfm_faces.pkl", BFM_VERTICES)
    from_mat = load_faces(official_sample / "BFM" / "facemodel_info.mat", BFM_VERTICES)
    assert from_pickle.shape == (70789, 3) and from_pickle.dtype == np.int64
    assert np.array_equal(from_pickle, from_mat)
    np.save(tmp_path / "faces.npy", from_pickle.astype(np.int32))
    assert np.array_equal(load_faces(tmp_path / "faces.npy"), from_pickle)
    (tmp_path / "triples.pkl").write_bytes(pickle.dumps([(0, 1, 2), (1, 2, 3)]))
    assert load_faces(tmp_path / "triples.pkl", 4).tolist() == [[0, 1, 2], [1, 2, 3]]


def test_bad_faces_are_named(tmp_path):
    np.save(tmp_path / "big.npy", np.array([[0, 1, 12]]))
    with pytest.raises(FormatError, match=r"big\.npy: face indices span 0 \.\. 12, expected 0 \.\. 9"):
        load_faces(tmp_path / "big.npy", 10)
    np.save(tmp_path / "quads.npy", np.zeros((4, 4), dtype=np.int64))
    with pytest.raises(FormatError, match=r"quads\.npy: faces must be a non-empty \(F, 3\)"):
        load_faces(tmp_path / "quads.npy")
    np.save(tmp_path / "half.npy", np.array([[0.5, 1, 2]]))
    with pytest.raises(FormatError, match=r"half\.npy: face indices are not whole numbers"):
        load_faces(tmp_path / "half.npy")
    scipy.io.savemat(tmp_path / "zero.mat", {"tri": np.array([[0, 1, 2]], dtype=np.float64)})
    with pytest.raises(FormatError, match=r"zero\.mat: 'tri' must be 1-based"):
        load_faces(tmp_path / "zero.mat")
    scipy.io.savemat(tmp_path / "none.mat", {"other": np.eye(3)})
    with pytest.raises(FormatError, match=r"none\.mat: MATLAB file has no 'tri'"):
        load_faces(tmp_path / "none.mat")
    (tmp_path / "faces.txt").write_text("0 1 2")
    with pytest.raises(FormatError, match=r"faces\.txt: unknown faces format \.txt"):
        load_faces(tmp_path / "faces.txt")
    with pytest.raises(FormatError, match=r"gone\.npy: faces file is missing"):
        load_faces(tmp_path / "gone.npy")


def test_parse_frames():
    assert parse_frames(None, 5) == range(5)
    assert list(parse_frames("1:3", 5)) == [1, 2]
    assert list(parse_frames(":2", 5)) == [0, 1]
    assert list(parse_frames("-2:", 5)) == [3, 4]
    for bad in ("3", "a:b", "4:2", "1:2:3"):
        with pytest.raises(ValueError):
            parse_frames(bad, 5)


def test_command_errors_exit_2_with_the_file_named(tmp_path, capsys):
    write_mesh_sequence(tmp_path / "seq", np.zeros((2, 5, 3), dtype=np.float32))
    np.save(tmp_path / "faces.npy", np.array([[0, 1, 2]]))
    base = ["export", str(tmp_path / "seq"), "--faces", str(tmp_path / "faces.npy"), "--out", str(tmp_path / "o")]
    assert main([*base, "--num-vertices", "5", "--frames", "7:9"]) == 2
    assert "selects no frame of a 2-frame sequence" in capsys.readouterr().err
    assert main([*base, "--num-vertices", "2"]) == 2
    assert "faces.npy: face indices span 0 .. 2, expected 0 .. 1" in capsys.readouterr().err
    assert main([*base, "--num-vertices", "5", "--format", "obj"]) == 0
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == [MARKER_NAME, "frame_00000.obj", "frame_00001.obj"]


def test_export_refuses_a_folder_of_other_files_and_reruns_into_its_own(tmp_path):
    vertices = np.zeros((2, 3, 3), dtype=np.float32)
    faces = np.array([[0, 1, 2]])
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "frame_00000.ply").write_bytes(b"a mesh the user made by hand")
    with pytest.raises(MMFace4DError, match="refusing to write mmface4d export output"):
        export_sequence(vertices, faces, mine)
    assert (mine / "frame_00000.ply").read_bytes() == b"a mesh the user made by hand"
    assert sorted(p.name for p in mine.iterdir()) == ["frame_00000.ply"]
    assert len(export_sequence(vertices, faces, tmp_path / "new")) == 2
    assert len(export_sequence(vertices, faces, tmp_path / "new")) == 2  # its own output: written again
