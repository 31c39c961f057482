"""The face-model interface shared by the embedded model and the BFM loader.

A linear 3D morphable model: ``vertices = mean + sum_k identity[k] * identity_basis[k]
+ sum_k expression[k] * expression_basis[k]``, in metres, +y up, +z out of the face.
Coefficients are in units of one standard deviation of their mode (the bases are pre-scaled).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.facemodel.topology import check_triangles, vertex_triangles

__all__ = ["FaceModel", "NUM_IDENTITY", "NUM_EXPRESSION", "NUM_KEYPOINTS", "load_face_model", "face_model_for_topology"]

NUM_IDENTITY = 80
NUM_EXPRESSION = 64
NUM_KEYPOINTS = 68


def _frozen(array, dtype) -> np.ndarray:
    out = np.ascontiguousarray(array, dtype=dtype)
    out.flags.writeable = False  # models are cached and shared: nobody may edit them in place
    return out


@dataclass(frozen=True, eq=False)
class FaceModel:
    """A linear face model on one fixed topology.

    Attributes
    ----------
    topology: ``"bfm_front"`` or ``"synthetic_v1@<N>"``; equal names mean equal triangles and keypoints.
    mean: (N, 3) float32, metres.
    identity_basis: (80, N, 3) float32, metres per standard deviation of each identity mode.
    expression_basis: (64, N, 3) float32, metres per standard deviation of each expression mode.
    triangles: (F, 3) int64, 0-based, counter-clockwise seen from the front (normals point +z).
    keypoints: (68,) int64, vertex ids of the iBUG 68 landmarks in iBUG order (0-based).
    expression_names: names of the first, meaningful expression modes (may be empty).
    identity_spread: standard deviation of real (plausible) faces' identity coefficients: 1.0 for a
    PCA model fitted to scans (the BFM); a model whose modes at one standard deviation give
    implausible faces says where its faces lie (fits use it as the identity prior).
    texture_mean / texture_basis: optional (N, 3) / (K, N, 3) float32 RGB in 0..255 units.
    The arrays are read-only (models are cached and shared).
    """

    topology: str
    mean: np.ndarray
    identity_basis: np.ndarray
    expression_basis: np.ndarray
    triangles: np.ndarray
    keypoints: np.ndarray
    expression_names: tuple[str, ...] = ()
    identity_spread: float = 1.0
    texture_mean: np.ndarray | None = None
    texture_basis: np.ndarray | None = None
    metadata: dict = field(default_factory=dict)

    def __post_init__(self):
        mean = _frozen(self.mean, np.float32)
        if mean.ndim != 2 or mean.shape[1] != 3:
            raise MMFace4DError(f"face model {self.topology}: mean must be (N, 3), found {mean.shape}")
        n = mean.shape[0]
        for name in ("identity_basis", "expression_basis"):
            basis = _frozen(getattr(self, name), np.float32)
            if basis.ndim != 3 or basis.shape[1:] != (n, 3):
                raise MMFace4DError(f"face model {self.topology}: {name} must be (K, {n}, 3), found {basis.shape}")
            object.__setattr__(self, name, basis)
        keypoints = _frozen(self.keypoints, np.int64).ravel()
        if keypoints.shape != (NUM_KEYPOINTS,) or keypoints.min() < 0 or keypoints.max() >= n:
            raise MMFace4DError(f"face model {self.topology}: keypoints must be 68 vertex ids in [0, {n})")
        try:
            triangles = check_triangles(self.triangles, n, where=f"face model {self.topology}")
        except ValueError as exc:
            raise MMFace4DError(str(exc)) from None
        triangles.flags.writeable = False
        object.__setattr__(self, "mean", mean)
        object.__setattr__(self, "keypoints", keypoints)
        object.__setattr__(self, "triangles", triangles)
        object.__setattr__(self, "expression_names", tuple(self.expression_names))
        if self.texture_mean is not None:
            object.__setattr__(self, "texture_mean", _frozen(self.texture_mean, np.float32))
        if self.texture_basis is not None:
            object.__setattr__(self, "texture_basis", _frozen(self.texture_basis, np.float32))

    def __repr__(self) -> str:
        return (
            f"FaceModel(topology={self.topology!r}, num_vertices={self.num_vertices}, "
            f"triangles={len(self.triangles)}, identity={len(self.identity_basis)}, "
            f"expression={len(self.expression_basis)})"
        )

    @property
    def num_vertices(self) -> int:
        return int(self.mean.shape[0])

    @property
    def num_identity(self) -> int:
        return int(self.identity_basis.shape[0])

    @property
    def num_expression(self) -> int:
        return int(self.expression_basis.shape[0])

    @cached_property
    def vertex_triangles(self) -> np.ndarray:
        """(N, K) int64: the triangles around each vertex, padded with -1 (see ``topology.vertex_triangles``)."""
        table = vertex_triangles(self.triangles, self.num_vertices)
        table.flags.writeable = False
        return table

    def expression_index(self, name: str) -> int:
        """Index of a named expression mode (``"jaw_open"`` -> 0 on the embedded model)."""
        try:
            return self.expression_names.index(name)
        except ValueError:
            raise MMFace4DError(
                f"face model {self.topology} has no expression mode {name!r}; it names {list(self.expression_names)}"
            ) from None

    def region_masks(self) -> dict[str, np.ndarray]:
        """The region masks of this topology (``regions.region_masks`` of its triangles and keypoints)."""
        from mmface4d_datasets.facemodel.regions import region_masks

        return region_masks(self.triangles, self.keypoints, self.num_vertices)

    def _coefficients(self, values, basis_size: int, what: str) -> np.ndarray | None:
        if values is None:
            return None
        coeffs = np.asarray(values, dtype=np.float32)
        if coeffs.ndim == 0 or coeffs.shape[-1] > basis_size:
            raise MMFace4DError(
                f"face model {self.topology}: {what} coefficients must have shape (..., K) with K <= {basis_size}, found {coeffs.shape}"
            )
        return coeffs

    def vertices(self, identity=None, expression=None) -> np.ndarray:
        """Vertex positions (..., N, 3) float32 in metres.

        ``identity`` is (..., K_id) with K_id <= 80 and ``expression`` (..., K_exp) with K_exp <= 64,
        in standard deviations; fewer coefficients than modes use the first modes only, ``None``
        means all zeros. Leading batch dimensions of the two broadcast against each other; with
        both ``None`` the result is a copy of the mean shape, (N, 3).
        """
        out = np.array(self.mean, dtype=np.float32)
        for values, basis, what in (
            (identity, self.identity_basis, "identity"),
            (expression, self.expression_basis, "expression"),
        ):
            coeffs = self._coefficients(values, len(basis), what)
            if coeffs is None:
                continue
            k = coeffs.shape[-1]
            flat = basis[:k].reshape(k, -1)
            offset = (coeffs.reshape(-1, k) @ flat).reshape(coeffs.shape[:-1] + self.mean.shape)
            out = out + offset
        return out

    def vertices_torch(self, identity=None, expression=None):
        """The same as ``vertices`` in torch, differentiable with respect to the coefficients.

        Coefficients are torch tensors (..., K) (or array-likes); the result is (..., N, 3) on the
        device and in the floating dtype of the first tensor given (CPU float32 otherwise). torch is imported here, not at
        module import.
        """
        import torch

        given = [t for t in (identity, expression) if isinstance(t, torch.Tensor)]
        device = given[0].device if given else torch.device("cpu")
        dtype = given[0].dtype if given and given[0].is_floating_point() else torch.float32
        out = _torch_view(self.mean, torch, device, dtype)
        for values, basis, what in (
            (identity, self.identity_basis, "identity"),
            (expression, self.expression_basis, "expression"),
        ):
            if values is None:
                continue
            coeffs = torch.as_tensor(values, device=device, dtype=dtype)
            k = coeffs.shape[-1] if coeffs.ndim else 0
            if coeffs.ndim == 0 or k > len(basis):
                raise MMFace4DError(
                    f"face model {self.topology}: {what} coefficients must have shape (..., K) with "
                    f"K <= {len(basis)}, found {tuple(coeffs.shape)}"
                )
            flat = _torch_view(basis[:k].reshape(k, -1), torch, device, dtype)
            offset = (coeffs.reshape(-1, k) @ flat).reshape(tuple(coeffs.shape[:-1]) + tuple(self.mean.shape))
            out = out + offset
        return out


def _torch_view(array: np.ndarray, torch, device, dtype):
    """``array`` as a tensor without a copy where device and dtype allow (CPU float32)."""
    import warnings

    with warnings.catch_warnings():
        # The model's arrays are read-only; torch warns about that, but only reads them here.
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(array)
    return tensor.to(device=device, dtype=dtype)


def load_face_model(name: str = "default", **options) -> FaceModel:
    """Load a face model by name.

    ``"default"`` (alias ``"synthetic"``): the embedded model, options ``num_vertices`` (default
    ``embedded.DEFAULT_NUM_VERTICES``) and ``seed`` (default 0); no files needed.
    ``"bfm"``: the BFM 2009 front face from the user's licence-gated files; options are the
    paths of ``bfm.load_bfm`` (``folder=...`` or the individual ``model_path``, ``expression_path``,
    ``front_index_path``, ``expression_index_path``, ``info_path``, ``std_exp_path``).
    """
    if name in ("default", "synthetic", "embedded"):
        from mmface4d_datasets.facemodel.embedded import embedded_face_model

        return embedded_face_model(**options)
    if name == "bfm":
        from mmface4d_datasets.facemodel.bfm import load_bfm

        return load_bfm(**options)
    raise MMFace4DError(f"unknown face model {name!r}; use 'default' (the embedded model) or 'bfm'")


def face_model_for_topology(topology: str, **options) -> FaceModel:
    """The model whose topology is ``topology``.

    ``"synthetic_v1@<N>"`` rebuilds the embedded model with N vertices (``seed`` may be given;
    the seed changes the bases, never the topology). ``"bfm_front"`` needs the BFM options of
    ``load_face_model("bfm", ...)``.
    """
    from mmface4d_datasets.facemodel.embedded import parse_synthetic_topology

    if topology == "bfm_front":
        return load_face_model("bfm", **options)
    num_vertices = parse_synthetic_topology(topology)
    return load_face_model("default", num_vertices=num_vertices, **options)
