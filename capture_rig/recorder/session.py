"""A recording session: consent, the plan, the prompter and the rig, in one loop.

Folder layout (what ``mmface4d rig convert --session`` reads)::

    SESSION/session.json          actor, consent record, devices (serials, roles, sync settings), modes
    SESSION/state.json            the prompter's state (resume after a crash)
    SESSION/takes/ID/ID_c.mkv     one recording per camera
    SESSION/takes/ID/ID.wav       16 kHz mono float32
    SESSION/takes/ID/ID.take.json timing for the audio alignment, dropped frames, sentence, status
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from capture_rig.consent import require_consent
from capture_rig.errors import RigError
from capture_rig.recorder.prompter import PromptSession, read_plan
from mmface4d_datasets.files import atomic_write_bytes, json_bytes


def _write_json(path: Path, data) -> None:
    atomic_write_bytes(path, json_bytes(data))


def open_session(session_dir, plan_path, registry) -> PromptSession:
    """Check consent (before anything is recorded) and open (or resume) the session's prompter."""
    plan = read_plan(plan_path)
    record = require_consent(registry, plan["actor_id"])
    session_dir = Path(session_dir)
    session_dir.mkdir(parents=True, exist_ok=True)
    info_path = session_dir / "session.json"
    if not info_path.exists():
        _write_json(
            info_path,
            {
                "actor_id": plan["actor_id"],
                "consent": record.as_dict(),
                "plan": str(plan_path),
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            },
        )
    return PromptSession(plan, session_dir / "state.json")


def run_session(session: PromptSession, rig, session_dir, get_key, draw, *, max_frames: int | None = None) -> dict:
    """Drive the prompter with keys from ``get_key()`` and draw with ``draw(session, message)``.

    Returns the prompter's counts when the plan is done or ``q`` is pressed. A take whose
    recording fails (a device error) is reported on screen and stays pending.
    """
    session_dir = Path(session_dir)
    info_path = session_dir / "session.json"
    info = json.loads(info_path.read_text(encoding="utf-8"))
    info["rig"] = rig.session_log()
    _write_json(info_path, info)
    takes = session_dir / "takes"
    message, worker, stop, outcome = "", None, None, {}
    while True:
        draw(session, message)
        action = session.press(get_key())
        message = action.message
        if action.kind == "start":
            stop, outcome = threading.Event(), {}
            item = action.item
            extra = {
                "subject_id": session.plan["actor_id"],
                "sentence_id": item["sentence_id"],
                "text": item["text"],
                "emotion": item["emotion"],
            }

            def work(item=item, stop=stop, outcome=outcome, extra=extra):
                try:
                    outcome["result"] = rig.record_take(takes, item["take_id"], stop=stop, max_frames=max_frames, extra_log=extra)
                except RigError as exc:
                    outcome["error"] = str(exc)

            worker = threading.Thread(target=work, daemon=True)
            worker.start()
        elif action.kind == "stop":
            stop.set()
            worker.join()
            if "error" in outcome:
                session.finished(False, outcome["error"])
                message = f"take FAILED, record it again: {outcome['error']}"
            else:
                result = outcome["result"]
                session.finished(True)
                dropped = {c: len(d) for c, d in result.dropped.items() if d}
                message = f"take {result.take_id} saved ({result.seconds:.1f} s)" + (
                    f"; DROPPED frames per camera {dropped}: consider a retake (t)" if dropped else ""
                )
        elif action.kind == "mark_bad":
            log_path = takes / action.item["take_id"] / f"{action.item['take_id']}.take.json"
            if log_path.exists():
                log = json.loads(log_path.read_text(encoding="utf-8"))
                log["status"] = "bad"
                _write_json(log_path, log)
        elif action.kind in ("quit", "done"):
            if action.kind == "done" or session.done:
                draw(session, "session complete")
            return session.counts()
