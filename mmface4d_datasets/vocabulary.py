"""The shared facts of MMFace4D, defined once (DESIGN.md): frame rate, sample rate, the emotions with
their sentence-id prefixes, and the face topologies' names and sizes.

Every package imports these from here; the older public names (``official.FPS``,
``release.schema.EMOTION_NAMES``, ``facemodel.bfm.BFM_NUM_VERTICES``, ...) are re-exports.
Pure Python (no numpy), so any environment can import it, the recorder's included.
"""

from __future__ import annotations

import re

from mmface4d_datasets.errors import FormatError

__all__ = [
    "FPS",
    "SAMPLE_RATE",
    "EMOTION_NAMES",
    "EMOTION_OF_PREFIX",
    "EMOTION_INDEX_OF_PREFIX",
    "PREFIX_OF_EMOTION",
    "BFM_TOPOLOGY",
    "BFM_NUM_VERTICES",
    "BFM_NUM_TRIANGLES",
    "SYNTHETIC_TOPOLOGY_PREFIX",
    "synthetic_topology_name",
    "parse_synthetic_topology",
    "topology_num_vertices",
]

#: Mesh frames per second of every take (the Azure Kinect capture rate).
FPS = 30
#: Audio samples per second of the speech (mono).
SAMPLE_RATE = 16000

#: Emotion names in ClassLabel order (the record's ``emotion`` index).
EMOTION_NAMES = ("neutral", "happy", "angry", "sad", "surprise", "fear", "disgust")
#: Sentence-id prefix (first two digits of the six-digit id) -> emotion name.
EMOTION_OF_PREFIX = dict(zip(("00", "21", "22", "23", "24", "25", "26"), EMOTION_NAMES))
#: Sentence-id prefix -> ClassLabel index.
EMOTION_INDEX_OF_PREFIX = {prefix: EMOTION_NAMES.index(name) for prefix, name in EMOTION_OF_PREFIX.items()}
#: Emotion name -> its sentence-id prefix.
PREFIX_OF_EMOTION = {name: prefix for prefix, name in EMOTION_OF_PREFIX.items()}

#: The authors' topology: the Basel Face Model 2009 front face.
BFM_TOPOLOGY = "bfm_front"
BFM_NUM_VERTICES = 35709
BFM_NUM_TRIANGLES = 70789
#: The embedded generated model's topologies are named ``synthetic_v1@<N>`` (N vertices).
SYNTHETIC_TOPOLOGY_PREFIX = "synthetic_v1@"


def synthetic_topology_name(num_vertices: int) -> str:
    """``synthetic_v1@<N>``."""
    return f"{SYNTHETIC_TOPOLOGY_PREFIX}{int(num_vertices)}"


def parse_synthetic_topology(topology: str) -> int:
    """The vertex count N of a ``synthetic_v1@<N>`` topology name; ``FormatError`` otherwise."""
    match = re.fullmatch(re.escape(SYNTHETIC_TOPOLOGY_PREFIX) + r"(\d+)", str(topology))
    if not match:
        raise FormatError(
            f"unknown face topology {topology!r}: expected '{BFM_TOPOLOGY}' or '{SYNTHETIC_TOPOLOGY_PREFIX}<N>' "
            f"(e.g. '{SYNTHETIC_TOPOLOGY_PREFIX}5023')"
        )
    return int(match.group(1))


def topology_num_vertices(topology: str) -> int:
    """N of a topology name: 35,709 for ``bfm_front``, N for ``synthetic_v1@<N>``; ``FormatError`` otherwise."""
    if topology == BFM_TOPOLOGY:
        return BFM_NUM_VERTICES
    return parse_synthetic_topology(topology)
