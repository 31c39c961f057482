"""``mmface4d export faceformer``: a release in the FaceFormer layout (docs/faceformer.md).

What is written into DIR:

- ``vertices_npy/<name>.npy``: float32 (T, N*3), the release's vertices (canonical head frame of the
  subject, metres, the release's vertex order), at ``fps`` (30: the release's frames bit for bit;
  25 or 60: :mod:`mmface4d_datasets.faceformer.timing`);
- ``wav/<name>.wav``: the speech at 16 kHz, mono; the release's stored samples bit for bit (a float
  WAV is copied, PCM kept PCM); audio stored at another rate is resampled (polyphase) to 16 kHz;
- ``templates.pkl``: ``{subject: (N, 3) float32}`` from ``templates/`` (the release's template rule),
  readable with ``pickle.load(f, encoding="latin1")`` under numpy 1.x and 2.x;
- ``subjects/{train,val,test}.txt``: one subject per line; ``options.txt``: the option strings of
  their ``main.py``; ``names.csv``: name -> id, split, role, frames and the metadata (emotion, text,
  gender, age); ``topology.npz``: the release's ``meta/topology.npz`` (triangles, keypoints, masks);
  ``mmface4d_export.json``: what was exported from which release; ``README.md``: the conventions.

Roles: the release's test split is their test; its train split is their train, except
``val_subjects`` train subjects held out as their val (chosen by a seeded shuffle; default 5 %, at
least one when the train split has two or more subjects). The benchmark's 31 test identities are
never used for validation.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mmface4d_datasets.errors import MMFace4DError
from mmface4d_datasets.faceformer.layout import (
    ROLES,
    SCRIPT_MODES,
    SUBJECTS_DIR,
    TEMPLATES_FILE,
    VERTICES_DIR,
    WAV_DIR,
    option_strings,
    sequence_name,
    templates_pickle_bytes,
)
from mmface4d_datasets.faceformer.timing import frames_at_rate, resample_frames
from mmface4d_datasets.vocabulary import SAMPLE_RATE

#: The kind of output an export folder is (mmface4d_datasets.output_folders).
FACEFORMER_KIND = "export-faceformer"
#: Frame rates an export may have: the release's 30, BIWI-style 25, VOCASET-style 60.
EXPORT_FPS = (30, 25, 60)
NAMES_FILE = "names.csv"
INFO_FILE = "mmface4d_export.json"
OPTIONS_FILE = "options.txt"
TOPOLOGY_FILE = "topology.npz"
NAMES_COLUMNS = (
    "name",
    "id",
    "subject_id",
    "take_id",
    "sentence_id",
    "split",
    "role",
    "emotion",
    "text",
    "gender",
    "age",
    "frames",
    "release_frames",
)
#: Share of the train split's subjects held out as their val by default.
DEFAULT_VAL_SHARE = 0.05
_log = logging.getLogger(__name__)


class ExportError(MMFace4DError):
    """The export cannot be made as asked (names the release, split or option)."""


@dataclass
class FaceFormerExport:
    """What :func:`export_faceformer` wrote."""

    out_dir: Path
    release: str
    fps: int
    release_fps: int
    num_vertices: int
    subjects: dict[str, list[str]]
    sequences: dict[str, int]
    frames: int
    seconds: float
    options: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "out_dir": str(self.out_dir),
            "release": self.release,
            "fps": self.fps,
            "release_fps": self.release_fps,
            "num_vertices": self.num_vertices,
            "subjects": {role: len(ids) for role, ids in self.subjects.items()},
            "sequences": dict(self.sequences),
            "frames": self.frames,
            "seconds": round(self.seconds, 3),
            "options": self.options,
        }


def default_val_count(num_train_subjects: int) -> int:
    """:data:`DEFAULT_VAL_SHARE` of the train subjects, rounded, at least 1 (none below 2 subjects)."""
    if num_train_subjects < 2:
        return 0
    return max(1, int(round(num_train_subjects * DEFAULT_VAL_SHARE)))


def choose_val_subjects(train_subjects: list[str], count: int, seed: int) -> list[str]:
    """``count`` of ``train_subjects``, sorted: the first of a permutation drawn by numpy's
    ``default_rng(seed)`` over the sorted subjects (the same release and seed, the same val)."""
    ordered = sorted(train_subjects)
    order = np.random.default_rng(seed).permutation(len(ordered))
    return sorted(ordered[i] for i in order[:count])


def result_fps(fps: int, release_fps: int) -> int:
    """The frame rate of their predictions for an export at ``fps``: 25 in BIWI mode; their vocaset mode
    (a 60 fps export) predicts at 30; a 30 fps export is read as stored."""
    return 25 if int(fps) == 25 else int(release_fps)


def parse_splits(text: str | None, available: list[str]) -> tuple[str, ...]:
    """``"train,test"`` -> the release splits to export; each must exist in the release."""
    if text is None:  # the default: train and test, those the release has
        return tuple(s for s in ("train", "test") if s in available) or tuple(available)
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    unknown = [s for s in names if s not in available]
    if not names or unknown:
        raise ExportError(f"--split {text!r}: the release has the splits {', '.join(available)}")
    return names


def export_faceformer(
    release_dir: str | os.PathLike,
    out_dir: str | os.PathLike,
    *,
    splits: str | tuple[str, ...] | None = None,
    fps: int = 30,
    val_subjects: int | None = None,
    seed: int = 0,
    progress: bool = False,
) -> FaceFormerExport:
    """Write the release ``release_dir`` into ``out_dir`` in the FaceFormer layout (module docstring).

    ``splits``: release splits to export ("train,test" or a tuple; default both when present).
    ``fps``: 30, 25 or 60 (:data:`EXPORT_FPS`). ``val_subjects``: train subjects held out as their val
    (default :func:`default_val_count`). ``out_dir`` must be new, empty or an earlier such export
    (:mod:`mmface4d_datasets.output_folders`); files of an earlier export that this one does not
    write are removed, nothing else. Raises ExportError for a bad option.
    """
    from mmface4d_datasets.output_folders import output_folder
    from mmface4d_datasets.release.reader import Release

    start = time.perf_counter()
    if int(fps) not in EXPORT_FPS:
        raise ExportError(f"--fps {fps}: one of {', '.join(map(str, EXPORT_FPS))} (the release's 30, BIWI-style 25, VOCASET-style 60)")
    fps = int(fps)
    release = Release(release_dir)
    release_fps = int(release.info.fps)
    chosen = splits if isinstance(splits, tuple) else parse_splits(splits, release.split_names)
    table = release.sequences()
    table = table[table["split"].isin(chosen)].sort_values("id").reset_index(drop=True)
    train_subjects = sorted(set(table.loc[table["split"] == "train", "subject_id"]))
    count = default_val_count(len(train_subjects)) if val_subjects is None else int(val_subjects)
    if count and (count < 0 or count >= len(train_subjects)):
        raise ExportError(
            f"--val-subjects {count}: the exported train split has {len(train_subjects)} subject(s); at least one must stay in train"
        )
    val = set(choose_val_subjects(train_subjects, count, seed)) if count else set()
    rows = []
    for record in table.to_dict("records"):
        role = "test" if record["split"] != "train" else ("val" if record["subject_id"] in val else "train")
        try:
            name = sequence_name(record["subject_id"], record["take_id"], role)
        except MMFace4DError as exc:
            raise ExportError(f"{release.path}: sequence {record['id']}: {exc}") from None
        frames = int(record["num_frames"]) if fps == release_fps else frames_at_rate(int(record["num_frames"]), release_fps, fps)
        rows.append(record | {"name": name, "role": role, "frames": frames, "release_frames": int(record["num_frames"])})
    if not rows:
        raise ExportError(f"{release.path}: no sequence in the split(s) {', '.join(chosen)}")
    by_id = {row["id"]: row for row in rows}
    subjects = {role: sorted({r["subject_id"] for r in rows if r["role"] == role}) for role in ROLES}
    templates = release.templates()
    missing = sorted(set().union(*subjects.values()) - set(templates))
    if missing:
        raise ExportError(f"{release.path}: templates/templates.parquet has no template for {', '.join(missing[:10])}")

    out = Path(out_dir)
    fixed = [TEMPLATES_FILE, NAMES_FILE, OPTIONS_FILE, TOPOLOGY_FILE, INFO_FILE, "README.md"] + [f"{SUBJECTS_DIR}/{r}.txt" for r in ROLES]
    data_files = [f"{VERTICES_DIR}/{r['name']}.npy" for r in rows] + [f"{WAV_DIR}/{r['name']}.wav" for r in rows]
    options = option_strings(subjects, release.info.num_vertices, fps)
    with output_folder(out, FACEFORMER_KIND, inputs=[release.path]) as output:
        output.will_write(*(out / name for name in fixed + data_files))
        total_frames = 0
        for split in chosen:
            records = release.iter_records(split, decode=False)
            if progress:
                from tqdm.auto import tqdm

                records = tqdm(records, desc=f"mmface4d export faceformer: {split}", unit="seq", total=int((table["split"] == split).sum()))
            for stored in records:
                row = by_id[stored["id"]]
                total_frames += _write_sequence(out, row, stored, release, release_fps, fps)
        from mmface4d_datasets.files import atomic_write_bytes, json_bytes

        exported = {s: templates[s] for s in sorted(set().union(*subjects.values()))}
        atomic_write_bytes(out / TEMPLATES_FILE, templates_pickle_bytes(exported))
        for role in ROLES:
            atomic_write_bytes(out / SUBJECTS_DIR / f"{role}.txt", "".join(f"{s}\n" for s in subjects[role]).encode("utf-8"))
        atomic_write_bytes(out / NAMES_FILE, _names_csv(rows, release.info.emotions))
        atomic_write_bytes(out / OPTIONS_FILE, _options_text(options, fps).encode("utf-8"))
        atomic_write_bytes(out / TOPOLOGY_FILE, (release.path / "meta" / "topology.npz").read_bytes())
        info = {
            "format": "faceformer",
            "release": str(release.path),
            "release_format_version": release.info.format_version,
            "release_checksum": release.info.files.get("meta/sequences.parquet").sha256
            if "meta/sequences.parquet" in release.info.files
            else None,
            "topology": release.info.topology,
            "topology_hash": release.info.topology_hash,
            "num_vertices": int(release.info.num_vertices),
            "fps": fps,
            "release_fps": release_fps,
            "result_fps": result_fps(fps, release_fps),
            "resampling": "none" if fps == release_fps else "linear in time (mmface4d_datasets.faceformer.timing)",
            "splits": list(chosen),
            "val_subjects": subjects["val"],
            "seed": int(seed),
            "sequences": {role: sum(r["role"] == role for r in rows) for role in ROLES},
        }
        atomic_write_bytes(out / INFO_FILE, json_bytes(info))
        described = info | {"folder": str(out.resolve()), "release": str(release.path.resolve())}
        atomic_write_bytes(out / "README.md", readme_text(described, subjects, options).encode("utf-8"))
        output.remove_written([out / name for name in fixed + data_files], under=(f"{VERTICES_DIR}/", f"{WAV_DIR}/"))
    return FaceFormerExport(
        out_dir=out,
        release=str(release.path),
        fps=fps,
        release_fps=release_fps,
        num_vertices=int(release.info.num_vertices),
        subjects=subjects,
        sequences=info["sequences"],
        frames=total_frames,
        seconds=time.perf_counter() - start,
        options=options,
    )


def _npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
    return buffer.getvalue()


def _write_sequence(out: Path, row: dict, stored: dict, release, release_fps: int, fps: int) -> int:
    """One sequence's .npy and .wav; returns its exported frame count."""
    from mmface4d_datasets.files import atomic_write_bytes
    from mmface4d_datasets.release.rows import decode_row

    where = f"release {release.path}: sequence {stored['id']!r}"
    decoded = decode_row({k: v for k, v in stored.items() if k != "audio"}, "default", where=where)
    vertices = decoded["vertices"]
    if fps != release_fps:
        vertices = resample_frames(vertices, release_fps, fps)
    flat = vertices.reshape(vertices.shape[0], -1).astype(np.float32, copy=False)
    atomic_write_bytes(out / VERTICES_DIR / f"{row['name']}.npy", _npy_bytes(flat))
    atomic_write_bytes(out / WAV_DIR / f"{row['name']}.wav", _wav_16k(bytes(stored["audio"]), int(stored["sample_rate"]), where))
    return int(flat.shape[0])


def _wav_16k(data: bytes, sample_rate: int, where: str) -> bytes:
    """The stored audio as a 16 kHz WAV: a float WAV at 16 kHz as it is; FLAC (PCM) as PCM WAV of the
    same bit depth (same samples); another rate resampled to a float WAV."""
    import soundfile

    from mmface4d_datasets.release.audio import decode_audio, float_wav_bytes, resample

    if sample_rate == SAMPLE_RATE and data[:4] == b"RIFF":
        return data
    info = soundfile.info(io.BytesIO(data))
    if sample_rate == SAMPLE_RATE and info.subtype in ("PCM_16", "PCM_24"):
        samples, _ = decode_audio(data, dtype="int16" if info.subtype == "PCM_16" else "int32", where=f"{where}: audio")
        buffer = io.BytesIO()
        soundfile.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype=info.subtype)
        return buffer.getvalue()
    samples, rate = decode_audio(data, where=f"{where}: audio")
    return float_wav_bytes(resample(samples, rate, SAMPLE_RATE), SAMPLE_RATE)


def _names_csv(rows: list[dict], emotions) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(NAMES_COLUMNS)
    for row in sorted(rows, key=lambda r: r["name"]):
        values = dict(row)
        emotion = values.get("emotion")
        if isinstance(emotion, (int, np.integer)):
            values["emotion"] = emotions[int(emotion)]
        writer.writerow([_cell(values.get(c)) for c in NAMES_COLUMNS])
    return buffer.getvalue().encode("utf-8")


def _cell(value) -> str:
    """A CSV cell: null (None, NaN) empty, a whole float (a nullable integer column) without ".0"."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _options_text(options: dict[str, str], fps: int) -> str:
    lines = [f"# option strings of FaceFormer-style main.py for this export ({fps} fps)"]
    if options["main"]:
        lines.append(options["main"])
    else:
        lines.append(f"# no FaceFormer dataset mode reads {fps} fps frames as they are (export --fps 25 for BIWI, --fps 60 for vocaset)")
    lines += [options["vertice_dim"], options["paths"], options["subjects"]]
    return "\n".join(lines) + "\n"


def readme_text(info: dict, subjects: dict[str, list[str]], options: dict[str, str]) -> str:
    """The README.md of an export folder: the conventions, the roles and the commands."""
    fps, release_fps = info["fps"], info["release_fps"]
    mode = SCRIPT_MODES.get(fps)
    counts = info["sequences"]
    n = info["num_vertices"]
    if fps == release_fps:
        timing = f"{fps} fps, the release's frames bit for bit (no resampling)."
    else:
        timing = (
            f"{fps} fps, RESAMPLED from the release's {release_fps} fps by linear interpolation in time (frame k is the "
            f"instant k/{fps} s; frames that fall on a release frame are copied exactly). Submissions are scored at "
            f"{release_fps} fps: `mmface4d bench submit-faceformer --fps {info['result_fps']}` converts their predictions."
        )
    if mode is not None:
        run = (
            f"Their scripts take the dataset name as the folder name too, so link this folder as `{mode['dataset']}` "
            f"inside their checkout and run, unchanged:\n\n```bash\nln -s {info['folder']} /path/to/FaceFormer/{mode['dataset']}\n"
            f"cd /path/to/FaceFormer && python main.py {options['main']}\n```\n"
        )
        if fps == 60:
            run += (
                "\nTheir vocaset loader keeps every second frame (`[::2]`, VOCASET is 60 fps): the even frames here "
                f"are the release's {release_fps} fps frames exactly, so the model trains and predicts at {release_fps} fps.\n"
            )
    else:
        run = (
            "FaceFormer and CodeTalker have no dataset mode that reads 30 fps frames as they are (their `vocaset` "
            "mode keeps every second frame of VOCASET's 60 fps; `BIWI` mode expects 25 fps). For them export again "
            "with `--fps 60` (vocaset mode) or `--fps 25` (BIWI mode); this folder is for codes that read the frames "
            f"as stored. The subject lists and the vertex dimension for their command line:\n\n```\n{options['vertice_dim']} "
            f"{options['subjects']}\n```\n"
        )
    return f"""# MMFace4D in the FaceFormer layout

Exported by `mmface4d export faceformer` from the release `{info["release"]}` (format {info["release_format_version"]},
topology `{info["topology"]}`, {n} vertices).

| file | content |
| --- | --- |
| `{VERTICES_DIR}/<name>.npy` | float32 (T, {3 * n}) = (T, N*3): frame t holds x, y, z of vertex 0, then vertex 1, ... |
| `{WAV_DIR}/<name>.wav` | the speech, 16 kHz mono (the release's samples) |
| `{TEMPLATES_FILE}` | dict subject -> (N, 3) float32 neutral face: `pickle.load(f, encoding="latin1")` |
| `{SUBJECTS_DIR}/train.txt`, `val.txt`, `test.txt` | one subject per line |
| `{OPTIONS_FILE}` | the option strings of their `main.py` |
| `{NAMES_FILE}` | name -> MMFace4D id, split, role, frames, emotion, text, gender, age |
| `{TOPOLOGY_FILE}` | triangles, 68 keypoints and region masks of the topology |

Conventions:

- Units: metres. Frame: the canonical head frame of each subject (head motion removed; +y up, +z out
  of the face), the frame the benchmark scores in. Vertex order: the release's topology `{info["topology"]}`.
- Frame rate: {timing}
- Names: `<subject>_<take_id>-<NN>`. Their loaders take the subject before the last `_` and a sentence
  number from the last two digits; NN puts each file in its role for both their `vocaset` and `BIWI`
  ranges: 01-32 train, 33-36 val, 37-40 test.
- Roles: their test = the release's test split ({len(subjects["test"])} subjects, {counts["test"]} sequences, the benchmark's
  test identities); their train = the release's train split ({len(subjects["train"])} subjects, {counts["train"]} sequences) minus
  their val: {len(subjects["val"])} train subjects held out ({counts["val"]} sequences, seeded choice, seed {info["seed"]}).
- Subject one-hot: their `one_hot` is the subject's row of `eye(len(train_subjects))`, in the order of
  `--train_subjects` (= `{SUBJECTS_DIR}/train.txt`); val and test speakers are unseen and get every row
  (their test script predicts once per train-speaker condition).

## Training with their code

{run}
## Submitting their predictions

Their `test` writes `result/<name>_condition_<train subject>.npy` (T, N*3). Convert one condition into a
checked benchmark submission and score it:

```bash
mmface4d bench submit-faceformer {info["folder"]}/result --release {info["release"]} --out submission.parquet --fps {info["result_fps"]} --condition <train subject>
mmface4d bench score submission.parquet --data {info["release"]}
```
"""
