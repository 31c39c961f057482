"""The landmark detectors: speed and accuracy on rig simulator takes and a real recording (prints one JSON object).

- MediaPipe (``reconstruction.detector.MediaPipeDetector``, the default): load seconds; per camera of
  each ``--takes`` take (``rig simulate`` output: ``DIR/takes/ID/ID_c.mp4`` with the truth
  ``DIR/truth/ID/ID.gt.npz``), the detection rate, how frames were searched, milliseconds per frame
  (frames decoded beforehand, depth crops on), and the error of the 68 points against the
  simulator's true landmarks (``landmarks``, where ``landmarks_visible``) per region (jaw, brows,
  nose, eyes, mouth), in pixels and in inter-ocular units (outer eye corners 36-45 of the truth),
  beside the same error of the take's own noisy landmark file (what the simulator hands the fit);
- the real Azure Kinect fixture (``--k4a``, its colour frames decoded with PyAV): found or not, ms;
- skimage's ``astronaut`` photograph (a real face): found, ms per frame (static and tracked);
- the anchor, face-alignment's FAN, on the same frames, only where its weights are already in
  torch's hub cache (it would download them otherwise): else its entry says why it did not run.

    .venv/bin/python perf/detector.py --takes SIMDIR [--k4a recording.mkv] [--max-frames 30]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REGIONS = {"jaw": range(0, 17), "brows": range(17, 27), "nose": range(27, 36), "eyes": range(36, 48), "mouth": range(48, 68)}


def errors(pred: np.ndarray, truth: np.ndarray, visible: np.ndarray) -> dict:
    """Mean point error per region over frames where ``pred`` has a face (visible, finite points), px and inter-ocular."""
    iod = np.linalg.norm(truth[:, 36] - truth[:, 45], axis=-1)  # (T,)
    ok = ~np.isnan(pred[:, :, 0]).all(axis=1)
    if not ok.any():
        return {"frames": 0}
    d = np.linalg.norm(pred[ok] - truth[ok], axis=-1)
    v = visible[ok].astype(bool) & np.isfinite(d)
    out = {"frames": int(ok.sum()), "inter_ocular_px": float(iod[ok].mean())}
    for name, idx in {"all": range(68), **REGIONS}.items():
        idx = list(idx)
        m = v[:, idx]
        if m.any():
            out[name] = {"px": float(d[:, idx][m].mean()), "iod": float((d[:, idx] / iod[ok, None])[m].mean())}
    return out


def anchor_weights() -> str | None:
    """Why face-alignment cannot run without a download, or None when its weights are cached."""
    hub = Path(os.environ.get("TORCH_HOME", Path.home() / ".cache" / "torch")) / "hub" / "checkpoints"
    names = [p.name for p in hub.glob("*")] if hub.is_dir() else []
    if any(n.startswith("2DFAN") for n in names) and any(n.startswith("s3fd") for n in names):
        return None
    return f"face-alignment's weights (2DFAN4, s3fd) are not in {hub}; it would download them, so it was not run"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--takes", type=Path, help="a `rig simulate` output folder")
    ap.add_argument(
        "--k4a", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "k4a_recording" / "recording.mkv"
    )
    ap.add_argument("--max-frames", type=int, default=30)
    args = ap.parse_args()

    import av
    import skimage.data

    from mmface4d_datasets import take_files
    from mmface4d_datasets.camera import read_take_cameras
    from reconstruction.detector import FaceAlignmentDetector, MediaPipeDetector

    out: dict = {"cpu_count": os.cpu_count(), "load_average": os.getloadavg()[0]}
    started = time.perf_counter()
    det = MediaPipeDetector()
    out["mediapipe_load_seconds"] = time.perf_counter() - started
    det.close()
    anchor_reason = anchor_weights()
    out["anchor"] = {"detector": "face-alignment 2D FAN", "ran": anchor_reason is None, "why_not": anchor_reason}
    fa = FaceAlignmentDetector() if anchor_reason is None else None

    photo = skimage.data.astronaut()
    with MediaPipeDetector() as d:
        r = d.detect_take([photo] * 10)
    out["astronaut"] = {
        "found": int(r.found.sum()),
        "frames": 10,
        "ms_per_frame": r.summary()["ms_per_frame"],
        "crops": r.summary()["crops"],
    }

    if args.k4a.is_file():
        with av.open(str(args.k4a)) as c:
            stream = next(s for s in c.streams.video if s.codec_context.name == "mjpeg")
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(stream)]
        with MediaPipeDetector() as d:
            r = d.detect_take(frames)
        out["k4a_fixture"] = {"frames": len(frames), "size": list(frames[0].shape[:2]), **r.summary()}

    takes = []
    for gt_path in sorted((args.takes / "truth").glob("*/*.gt.npz")) if args.takes else []:
        take_id = gt_path.name.split(".")[0]
        folder = args.takes / "takes" / take_id
        gt = np.load(gt_path)
        entry = {"take": take_id, "cameras": {}}
        for c in (0, 1, 2):
            colour = list(take_files.iter_colour_video(take_files.colour_path(folder, take_id, c)))[: args.max_frames]
            depth = list(take_files.iter_depth_video(take_files.depth_path(folder, take_id, c)))[: len(colour)]
            fx = float(read_take_cameras(folder / f"{take_id}_{c}.json")[0].intrinsics[0, 0])
            truth, visible = gt["landmarks"][c][: len(colour)], gt["landmarks_visible"][c][: len(colour)]
            with MediaPipeDetector() as d:
                r = d.detect_take(colour, depth, fx)
            noisy = take_files.read_landmarks(take_files.landmarks_path(folder, take_id, c))[: len(colour)]
            cam = {
                "size": list(colour[0].shape[:2]),
                "face_width_fraction": float(np.nanmean(np.ptp(truth[:, :17, 0], axis=1)) / colour[0].shape[1]),
                "mediapipe": {**r.summary(), "error": errors(r.landmarks, truth, visible)},
                "noisy_landmark_file": errors(noisy[:, :68] if noisy.shape[1] == 68 else noisy, truth, visible),
            }
            if fa is not None:
                fr = fa.detect_take(colour)
                cam["anchor"] = {**fr.summary(), "error": errors(fr.landmarks, truth, visible)}
            entry["cameras"][str(c)] = cam
        takes.append(entry)
    out["simulator_takes"] = takes
    json.dump(out, sys.stdout, indent=1)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
