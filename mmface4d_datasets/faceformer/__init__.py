"""The FaceFormer layout: what FaceFormer, CodeTalker, SelfTalk, FaceDiffuser and their kin read and write.

Those codes read VOCASET as FaceFormer packed it (docs/faceformer.md):

- ``vertices_npy/<subject>_<sentence>.npy``: float32 (T, N*3), one row per frame;
- ``wav/<subject>_<sentence>.wav``: the speech, read with ``librosa.load(path, sr=16000)``;
- ``templates.pkl``: ``{subject: (N, 3) array}``, read with ``pickle.load(f, encoding="latin1")``;
- ``--train_subjects "A B ..." --val_subjects ... --test_subjects ...`` on their command line;

and their ``test``/``predict`` writes ``result/<name>.npy`` (or ``<name>_condition_<subject>.npy``),
(T, N*3) again. The modules:

- :mod:`.layout`: names, roles (train / val / test), the option strings, ``templates.pkl`` written
  for any numpy and read back without executing anything;
- :mod:`.timing`: frame-rate conversion (linear in time; 30 fps <-> 25 or 60 fps);
- :mod:`.export`: a release into that layout (``mmface4d export faceformer``);
- :mod:`.batches`: their batch tuple ``(audio, vertice, template, one_hot, file_name)`` straight
  from :func:`mmface4d_datasets.load_dataset`, for training code that wants it (torch).

Reading a FaceFormer folder back into a release is ``builders.faceformer_source``; their ``result/``
into a submission is ``benchmark.faceformer_results``.
"""

from __future__ import annotations

from mmface4d_datasets.faceformer.layout import (
    ROLE_NUMBERS,
    ROLES,
    TEMPLATES_FILE,
    VERTICES_DIR,
    WAV_DIR,
    parse_name,
    read_templates,
    sequence_name,
    templates_pickle_bytes,
)
from mmface4d_datasets.faceformer.timing import frames_at_rate, resample_frames

__all__ = [
    "ROLES",
    "ROLE_NUMBERS",
    "TEMPLATES_FILE",
    "VERTICES_DIR",
    "WAV_DIR",
    "frames_at_rate",
    "parse_name",
    "read_templates",
    "resample_frames",
    "sequence_name",
    "templates_pickle_bytes",
]
