"""The BFM 2009 front face (35,709 vertices, 70,789 triangles) from the user's own files.

The Basel Face Model 2009 (``01_MorphableModel.mat``) and the expression basis of Guo et al.
(``Exp_Pca.bin``) are licence-gated: users download them themselves and give us their paths; the
project never ships them. The assembly follows Deep3DFaceRecon's ``transferBFM09`` (DESIGN.md, Face
topology and models), except that we keep metres (divide micrometres by 1e6, not 1e5):

- ``index_exp = BFM_front_idx.idx - 1``: front vertex -> vertex of the 53,215-vertex expression mesh;
  ``index_shape = BFM_exp_idx.trimIndex[index_exp] - 1``: front vertex -> vertex of the full
  53,490-vertex BFM mesh.
- ``mean = shapeMU[index_shape] / 1e6`` (xyz interleaved per vertex). The expression mean of
  ``Exp_Pca.bin`` is not added (as in Deep3DFaceRecon).
- ``identity_basis = (shapePC * shapeEV)[:, :80]`` at ``index_shape``, / 1e6.
- ``expression_basis = (expPC * std)[:, :64]`` at ``index_exp``, / 1e6, with ``std`` from
  ``std_exp.txt`` (one standard deviation per component).
- ``texture_mean`` / ``texture_basis`` likewise from ``texMU`` / ``texPC * texEV`` (first 80), when present.
- ``triangles = facemodel_info.tri - 1`` and ``keypoints = facemodel_info.keypoints - 1``.

``bfm_topology(info_path)`` gives the triangles and keypoints from ``facemodel_info.mat`` alone
(a public file, no licence-gated geometry): enough for region masks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmface4d_datasets.vocabulary import BFM_NUM_TRIANGLES, BFM_NUM_VERTICES, BFM_TOPOLOGY
from mmface4d_datasets.errors import FormatError, MMFace4DError
from mmface4d_datasets.facemodel.model import NUM_EXPRESSION, NUM_IDENTITY, FaceModel

__all__ = ["BFM_TOPOLOGY", "BFM_NUM_VERTICES", "BFM_NUM_TRIANGLES", "BFM_FILE_NAMES", "BFMTopology", "bfm_topology", "load_bfm"]

MICROMETRES_PER_METRE = 1e6

#: The standard file names in a BFM folder (Deep3DFaceRecon's layout).
BFM_FILE_NAMES = {
    "model_path": "01_MorphableModel.mat",
    "expression_path": "Exp_Pca.bin",
    "front_index_path": "BFM_front_idx.mat",
    "expression_index_path": "BFM_exp_idx.mat",
    "info_path": "facemodel_info.mat",
    "std_exp_path": "std_exp.txt",
}
_LICENCE_HINT = {
    "model_path": "the Basel Face Model 2009 (licence-gated: request it from the University of Basel)",
    "expression_path": "the expression basis of Guo et al. (licence-gated; see Deep3DFaceRecon's BFM instructions)",
}


@dataclass(frozen=True, eq=False)
class BFMTopology:
    """Triangles and keypoints of the BFM front face, without its geometry.

    topology: ``"bfm_front"``; num_vertices: N (35,709 for the real files); triangles: (F, 3) int64
    0-based; keypoints: (68,) int64 0-based, iBUG order; source: the ``facemodel_info.mat`` read.
    """

    topology: str
    num_vertices: int
    triangles: np.ndarray
    keypoints: np.ndarray
    source: str

    def region_masks(self) -> dict[str, np.ndarray]:
        from mmface4d_datasets.facemodel.regions import region_masks

        return region_masks(self.triangles, self.keypoints, self.num_vertices)


def _require_file(path, what: str) -> Path:
    if path is None:
        raise MMFace4DError(f"BFM: no path given for {what}")
    path = Path(path)
    if not path.is_file():
        raise MMFace4DError(f"BFM: {path} does not exist (expected {what})")
    return path


def _loadmat(path: Path, variables: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """The named variables of a MATLAB v5 file; ``optional`` ones are returned only when present."""
    from scipy.io import loadmat

    try:
        content = loadmat(str(path), variable_names=list(variables + optional))
    except NotImplementedError:
        raise FormatError(f"{path}: a MATLAB v7.3 (HDF5) file; save it as MATLAB v5 (-v7 or older)") from None
    except Exception as exc:  # scipy raises several types for a file that is not a .mat
        raise FormatError(f"{path}: not a readable MATLAB .mat file ({exc})") from None
    missing = [name for name in variables if name not in content]
    if missing:
        raise FormatError(f"{path}: lacks the variable(s) {', '.join(missing)}")
    return {name: np.asarray(content[name]) for name in variables + optional if name in content}


def _one_based(values: np.ndarray, upper: int, path: Path, name: str) -> np.ndarray:
    """1-based MATLAB indices -> 0-based int64, checked to lie in [0, upper)."""
    flat = np.asarray(values, dtype=np.float64)
    if flat.size and not np.array_equal(flat, np.round(flat)):
        raise FormatError(f"{path}: {name} holds non-integer indices")
    out = flat.astype(np.int64) - 1
    if out.size and (out.min() < 0 or out.max() >= upper):
        raise FormatError(f"{path}: {name} must hold 1-based indices in [1, {upper}], found {out.min() + 1} .. {out.max() + 1}")
    return out


def bfm_topology(info_path: str | os.PathLike) -> BFMTopology:
    """Triangles (``tri``) and 68 keypoints (``keypoints``) from a ``facemodel_info.mat``, 0-based.

    The vertex count is the length of ``point_buf`` when present (35,709 for BFM front), else the
    largest triangle index. Raises ``FormatError`` naming the file when a variable is missing or an
    index is out of range.
    """
    path = _require_file(info_path, "the BFM front-face facemodel_info.mat (variables tri, keypoints)")
    content = _loadmat(path, ("tri", "keypoints"), optional=("point_buf",))
    tri = content["tri"]
    if tri.ndim != 2 or tri.shape[1] != 3:
        raise FormatError(f"{path}: tri must be an (F, 3) array, found {tri.shape}")
    num_vertices = len(content["point_buf"]) if "point_buf" in content else int(np.max(tri))
    triangles = _one_based(tri, num_vertices, path, "tri")
    keypoints = _one_based(content["keypoints"].ravel(), num_vertices, path, "keypoints")
    if keypoints.shape != (68,):
        raise FormatError(f"{path}: keypoints must hold 68 vertex indices, found {keypoints.size}")
    return BFMTopology(BFM_TOPOLOGY, int(num_vertices), triangles, keypoints, str(path))


def read_expression_basis(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """``Exp_Pca.bin``: int32 n, float32 expMU (3 M), float32 expPC (n rows of 3 M, then transposed).

    Returns ``(exp_mu (3 M,), exp_pc (3 M, n))`` float32, M the expression mesh's vertex count,
    found from the file size (53,215 for the real file). Little-endian, as the file is written.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        header = np.fromfile(handle, dtype="<i4", count=1)
        if header.size != 1 or header[0] <= 0:
            raise FormatError(f"{path}: expected an int32 component count n > 0 at the start of Exp_Pca.bin")
        n = int(header[0])
        floats, remainder = divmod(size - 4, 4)
        if remainder or floats % (3 * (n + 1)):
            raise FormatError(f"{path}: {size} bytes do not hold n = {n} components: expected 4 + 4 * 3 M * (n + 1) bytes")
        values = 3 * (floats // (3 * (n + 1)))
        exp_mu = np.fromfile(handle, dtype="<f4", count=values)
        exp_pc = np.fromfile(handle, dtype="<f4", count=values * n)
    if exp_pc.size != values * n:
        raise FormatError(f"{path}: truncated expression basis")
    return exp_mu.astype(np.float32), exp_pc.reshape(n, values).T


def _read_std(path: Path, needed: int) -> np.ndarray:
    try:
        std = np.loadtxt(path, dtype=np.float64).ravel()
    except ValueError as exc:
        raise FormatError(f"{path}: expected whitespace-separated numbers ({exc})") from None
    if std.size < needed:
        raise FormatError(f"{path}: holds {std.size} standard deviations, at least {needed} are needed")
    return std


def _basis_at(columns: np.ndarray, index: np.ndarray, count: int) -> np.ndarray:
    """(3 M, K) xyz-interleaved basis -> (count, len(index), 3) at the given vertices."""
    per_vertex = columns[:, :count].reshape(-1, 3, count)[index]
    return np.ascontiguousarray(np.transpose(per_vertex, (2, 0, 1)))


def load_bfm(
    folder: str | os.PathLike | None = None,
    *,
    model_path=None,
    expression_path=None,
    front_index_path=None,
    expression_index_path=None,
    info_path=None,
    std_exp_path=None,
    recenter: bool = False,
) -> FaceModel:
    """Assemble the BFM front-face model (topology ``bfm_front``) from the user's files.

    ``folder`` holds the files under their standard names (``BFM_FILE_NAMES``); an explicit path
    argument wins over the folder. Units: metres; the frame is BFM's own (+y up, +z out of the
    face); ``recenter=True`` moves the mean shape's centroid to the origin (as Deep3DFaceRecon's
    model does), shifting nothing else. Missing files raise ``MMFace4DError`` naming the file and,
    for licence-gated ones, where they come from; malformed ones raise ``FormatError``.
    """
    given = {
        "model_path": model_path,
        "expression_path": expression_path,
        "front_index_path": front_index_path,
        "expression_index_path": expression_index_path,
        "info_path": info_path,
        "std_exp_path": std_exp_path,
    }
    paths = {}
    for key, value in given.items():
        if value is None and folder is not None:
            value = Path(folder) / BFM_FILE_NAMES[key]
        what = _LICENCE_HINT.get(key, f"the BFM file {BFM_FILE_NAMES[key]}")
        paths[key] = _require_file(value, what)

    model = _loadmat(paths["model_path"], ("shapeMU", "shapePC", "shapeEV"), optional=("texMU", "texPC", "texEV"))
    shape_mu = model["shapeMU"].astype(np.float64).ravel()
    shape_pc = model["shapePC"].astype(np.float64)
    shape_ev = model["shapeEV"].astype(np.float64).ravel()
    if shape_mu.size % 3 or shape_pc.shape[0] != shape_mu.size or shape_pc.shape[1] != shape_ev.size:
        raise FormatError(
            f"{paths['model_path']}: shapeMU {model['shapeMU'].shape}, shapePC {shape_pc.shape} and shapeEV "
            f"{model['shapeEV'].shape} do not agree (expected 3 M x 1, 3 M x K, K x 1)"
        )
    if shape_ev.size < NUM_IDENTITY:
        raise FormatError(f"{paths['model_path']}: {shape_ev.size} identity components, {NUM_IDENTITY} are needed")
    full_count = shape_mu.size // 3

    exp_mu, exp_pc = read_expression_basis(paths["expression_path"])
    expression_count = exp_mu.size // 3
    if exp_pc.shape[1] < NUM_EXPRESSION:
        raise FormatError(f"{paths['expression_path']}: {exp_pc.shape[1]} expression components, {NUM_EXPRESSION} are needed")
    std = _read_std(paths["std_exp_path"], exp_pc.shape[1])[: exp_pc.shape[1]]

    front = _loadmat(paths["front_index_path"], ("idx",))["idx"].ravel()
    index_exp = _one_based(front, expression_count, paths["front_index_path"], "idx")
    trim = _loadmat(paths["expression_index_path"], ("trimIndex",))["trimIndex"].ravel()
    if trim.size != expression_count:
        raise FormatError(
            f"{paths['expression_index_path']}: trimIndex has {trim.size} entries, the expression basis "
            f"{paths['expression_path']} has {expression_count} vertices"
        )
    index_shape = _one_based(trim, full_count, paths["expression_index_path"], "trimIndex")[index_exp]

    topology = bfm_topology(paths["info_path"])
    if topology.num_vertices != len(index_exp):
        raise FormatError(
            f"{paths['info_path']}: describes {topology.num_vertices} vertices, but {paths['front_index_path']} "
            f"selects {len(index_exp)} front vertices"
        )

    mean = shape_mu.reshape(-1, 3)[index_shape] / MICROMETRES_PER_METRE
    identity = _basis_at(shape_pc * shape_ev[None, :], index_shape, NUM_IDENTITY) / MICROMETRES_PER_METRE
    expression = _basis_at(exp_pc.astype(np.float64) * std[None, :], index_exp, NUM_EXPRESSION) / MICROMETRES_PER_METRE
    if recenter:
        mean = mean - mean.mean(axis=0, keepdims=True)

    texture_mean = texture_basis = None  # texture is optional
    if all(name in model for name in ("texMU", "texPC", "texEV")) and model["texEV"].size >= NUM_IDENTITY:
        texture_mean = model["texMU"].astype(np.float64).ravel().reshape(-1, 3)[index_shape]
        tex_basis = model["texPC"].astype(np.float64) * model["texEV"].astype(np.float64).ravel()[None, :]
        texture_basis = _basis_at(tex_basis, index_shape, NUM_IDENTITY)

    return FaceModel(
        topology=BFM_TOPOLOGY,
        mean=mean,
        identity_basis=identity,
        expression_basis=expression,
        triangles=topology.triangles,
        keypoints=topology.keypoints,
        expression_names=(),
        texture_mean=texture_mean,
        texture_basis=texture_basis,
        metadata={"source": {key: str(value) for key, value in paths.items()}, "recentered": bool(recenter)},
    )
