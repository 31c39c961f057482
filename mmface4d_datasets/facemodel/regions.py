"""Region masks from the triangle graph and the 68 keypoints alone (no geometry).

The rule (version ``REGION_RULE_VERSION``), with every distance measured in edge hops on the
triangle mesh (breadth-first search; ties never matter because only distances are used):

- ``band(a, b)`` is the set of vertices on SOME shortest path between keypoints a and b,
  ``{v : d(a, v) + d(v, b) = d(a, b)}``; the band of a polyline is the union over its
  consecutive pairs. The scale is the span of the eyes, ``s = d(36, 45)`` (outer eye corners),
  and the radius of every band region is ``r = 0.06 * s``.
- ``lips``: vertices within ``r`` of the bands of the outer lip (48..59, closed) and the inner lip
  (60..67, closed).
- ``eyes``: within ``r`` of the bands of the two eye contours (36..41, 42..47, closed).
- ``nose``: within ``r`` of the bands 27-28-29-30, 31-32-33-34-35, 30-31 and 30-35.
- ``forehead``: vertices above the brows, i.e. whose distance to the eye keypoints (36..47)
  exceeds their distance to the brow bands (17..21, 22..26) by at least ``0.75 * b``, where ``b`` is
  the median distance from a brow keypoint to the eye keypoints; minus ``eyes``.
- ``upper_face``: vertices nearer to the upper keypoints (brows 17..26, nose bridge and tip 27..30,
  eyes 36..47) than to the lower ones (jaw 2..14, nose base 31..35, lips 48..67), minus ``lips``;
  a tie goes to the lower face. It holds forehead, brows, eyes, nose bridge and excludes mouth and jaw.
- ``face``: every vertex.
- ``chin``: vertices whose nearest keypoint is a chin keypoint of the jaw line (6..10), minus ``lips``.
- ``cheeks``: vertices whose nearest keypoint is a jaw keypoint of the cheeks (1..5, 11..15) or a
  nose wing (31, 35), minus ``lips``, ``nose`` and ``eyes``.
- ``border``: the ring of vertices within ``0.04 * s`` of the mesh's boundary (where a fit has the
  least data: the mask's edge meets the head, hair and neck).

Masks are sorted int64 vertex-id arrays. The same triangles and keypoints always give the same
masks, so BFM masks come from the public topology files, without the licence-gated mean shape.
"""

from __future__ import annotations

import numpy as np

from mmface4d_datasets.errors import MMFace4DError

__all__ = ["REGION_RULE_VERSION", "REGION_NAMES", "region_masks"]

#: Bump when the rule or one of its constants changes (releases record it in meta/topology.npz).
REGION_RULE_VERSION = "hop_bands_v2"  # v2 adds chin, cheeks and border; v1's six masks are unchanged
REGION_NAMES = ("lips", "upper_face", "face", "eyes", "nose", "forehead", "chin", "cheeks", "border")

BAND_RADIUS = 0.06  # of the eye span d(36, 45); the mouth width is no scale (an open mouth lengthens it)
FOREHEAD_MARGIN = 0.75  # of the brow-to-eye distance
BORDER_RADIUS = 0.04  # of the eye span
CHIN_KEYPOINTS = list(range(6, 11))
CHEEK_KEYPOINTS = list(range(1, 6)) + list(range(11, 16)) + [31, 35]

OUTER_LIP = list(range(48, 60)) + [48]
INNER_LIP = list(range(60, 68)) + [60]
RIGHT_EYE = list(range(36, 42)) + [36]
LEFT_EYE = list(range(42, 48)) + [42]
RIGHT_BROW = list(range(17, 22))
LEFT_BROW = list(range(22, 27))
NOSE_LINES = ([27, 28, 29, 30], [31, 32, 33, 34, 35], [30, 31], [30, 35])
UPPER_KEYPOINTS = list(range(17, 31)) + list(range(36, 48))
LOWER_KEYPOINTS = list(range(2, 15)) + list(range(31, 36)) + list(range(48, 68))


class _HopGraph:
    """Hop distances on a triangle mesh, from single keypoints (cached) or from vertex sets."""

    def __init__(self, triangles, keypoints, num_vertices: int):
        from scipy.sparse.csgraph import dijkstra

        from mmface4d_datasets.facemodel.topology import adjacency

        self._dijkstra = dijkstra
        self.graph = adjacency(triangles, num_vertices)
        self.keypoints = keypoints
        # One search per keypoint: (68, N) distances.
        self.from_keypoint = dijkstra(self.graph, directed=False, indices=keypoints, unweighted=True)

    def between(self, a: int, b: int) -> float:
        return float(self.from_keypoint[a, self.keypoints[b]])

    def band(self, polyline) -> np.ndarray:
        """Boolean mask of the vertices on some shortest path between consecutive keypoints."""
        mask = np.zeros(self.graph.shape[0], dtype=bool)
        for a, b in zip(polyline[:-1], polyline[1:]):
            total = self.from_keypoint[a] + self.from_keypoint[b]
            mask |= total == self.between(a, b)
        return mask

    def from_set(self, mask: np.ndarray) -> np.ndarray:
        sources = np.flatnonzero(mask)
        if len(sources) == 0:
            return np.full(self.graph.shape[0], np.inf)
        return self._dijkstra(self.graph, directed=False, indices=sources, unweighted=True, min_only=True)

    def from_keypoints(self, ids) -> np.ndarray:
        return self.from_keypoint[list(ids)].min(axis=0)


def region_masks(triangles, keypoints, num_vertices: int) -> dict[str, np.ndarray]:
    """The region masks of a topology by the rule of this module (see the module docstring).

    Arguments: ``triangles`` (F, 3) 0-based vertex ids, ``keypoints`` (68,) 0-based vertex ids in
    iBUG order, ``num_vertices`` N. Returns ``{name: sorted int64 ids}`` for ``REGION_NAMES``.
    Raises ``MMFace4DError`` when the keypoints are not 68 valid vertex ids or a keypoint cannot
    reach the ones it is measured against (a disconnected mesh).
    """
    from mmface4d_datasets.facemodel.topology import check_triangles

    keypoints = np.asarray(keypoints, dtype=np.int64).ravel()
    if keypoints.shape != (68,) or keypoints.min() < 0 or keypoints.max() >= num_vertices:
        raise MMFace4DError(f"region masks need 68 keypoint vertex ids in [0, {num_vertices}), found {keypoints.shape}")
    try:
        triangles = check_triangles(triangles, num_vertices, where="region masks")
    except ValueError as exc:
        raise MMFace4DError(str(exc)) from None
    hops = _HopGraph(triangles, keypoints, num_vertices)

    eye_span = hops.between(36, 45)
    if not np.isfinite(eye_span) or eye_span <= 0:
        raise MMFace4DError("region masks: the outer eye corners (36, 45) are not connected on the mesh")
    radius = BAND_RADIUS * eye_span

    lips = hops.from_set(hops.band(OUTER_LIP) | hops.band(INNER_LIP)) <= radius
    eyes = hops.from_set(hops.band(RIGHT_EYE) | hops.band(LEFT_EYE)) <= radius
    nose_band = np.zeros(num_vertices, dtype=bool)
    for line in NOSE_LINES:
        nose_band |= hops.band(line)
    nose = hops.from_set(nose_band) <= radius

    to_eyes = hops.from_keypoints(range(36, 48))
    to_brows = hops.from_set(hops.band(RIGHT_BROW) | hops.band(LEFT_BROW))
    brow_to_eye = float(np.median(to_eyes[keypoints[17:27]]))
    forehead = (to_eyes - to_brows >= FOREHEAD_MARGIN * brow_to_eye) & ~eyes

    upper_face = (hops.from_keypoints(UPPER_KEYPOINTS) < hops.from_keypoints(LOWER_KEYPOINTS)) & ~lips
    nearest = np.argmin(hops.from_keypoint, axis=0)  # the keypoint (iBUG index) nearest each vertex
    chin = np.isin(nearest, CHIN_KEYPOINTS) & ~lips
    cheeks = np.isin(nearest, CHEEK_KEYPOINTS) & ~lips & ~nose & ~eyes
    from mmface4d_datasets.facemodel.topology import boundary_vertices

    border = hops.from_set(boundary_vertices(triangles, num_vertices)) <= BORDER_RADIUS * eye_span
    masks = {
        "lips": lips,
        "upper_face": upper_face,
        "face": np.ones(num_vertices, dtype=bool),
        "eyes": eyes,
        "nose": nose,
        "forehead": forehead,
        "chin": chin,
        "cheeks": cheeks,
        "border": border,
    }
    return {name: np.flatnonzero(masks[name]).astype(np.int64) for name in REGION_NAMES}
