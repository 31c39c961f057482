"""Consent records and the withdrawal list (no dependency beyond numpy: the recorder's environment uses it).

A consent REGISTRY is a folder:

    REGISTRY/consent/<actor_id>.json    one record per actor: actor_id, date (YYYY-MM-DD), scope
                                        (what the recordings may be used for), and free notes
    REGISTRY/withdrawals.json           {"version": 1, "withdrawn": [{"actor_id", "date", "note"}]}

The recorder refuses to record an actor without a valid record, or one on the withdrawal list.
``mmface4d build release --withdrawals REGISTRY/withdrawals.json`` leaves every take of a
withdrawn actor out of a new release and reports how many were left out. An actor id is the
``subject_id`` of their takes.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import re
from dataclasses import asdict, dataclass
from pathlib import Path

from capture_rig.errors import ConsentError

#: Uses a consent record may grant; a release needs "research_release".
SCOPES = ("research_release", "internal_research", "audio", "face_geometry", "colour_video_internal")
WITHDRAWALS = "withdrawals.json"
_ACTOR = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class ConsentRecord:
    actor_id: str
    date: str
    scope: tuple[str, ...]
    notes: str = ""

    def as_dict(self) -> dict:
        return asdict(self) | {"scope": list(self.scope)}


def _check_actor(actor_id: str) -> str:
    if not _ACTOR.fullmatch(str(actor_id)):
        raise ConsentError(f"actor id {actor_id!r} must be 1-64 letters, digits, '_', '.' or '-'")
    return str(actor_id)


def _check_date(date: str, what: str) -> str:
    try:
        _dt.date.fromisoformat(str(date))
    except ValueError:
        raise ConsentError(f"{what}: date {date!r} is not YYYY-MM-DD") from None
    return str(date)


def _write_json(path: Path, data) -> None:
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes

    atomic_write_bytes(path, json_bytes(data))


def record_consent(registry: str | os.PathLike, actor_id: str, date: str, scope, notes: str = "") -> ConsentRecord:
    """Write (or replace) an actor's consent record; ``scope`` lists uses from :data:`SCOPES`."""
    actor_id = _check_actor(actor_id)
    scope = tuple(scope)
    unknown = [s for s in scope if s not in SCOPES]
    if not scope or unknown:
        raise ConsentError(f"consent of {actor_id}: scope must list uses from {', '.join(SCOPES)}; got {list(scope)}")
    record = ConsentRecord(actor_id, _check_date(date, f"consent of {actor_id}"), scope, notes)
    _write_json(Path(registry) / "consent" / f"{actor_id}.json", record.as_dict())
    return record


def read_consent(registry: str | os.PathLike, actor_id: str) -> ConsentRecord:
    """The actor's consent record; :class:`ConsentError` when there is none or it is malformed."""
    actor_id = _check_actor(actor_id)
    path = Path(registry) / "consent" / f"{actor_id}.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConsentError(
            f"{path}: no consent record for actor {actor_id}; record it first "
            f"(mmface4d rig consent add --registry {registry} --actor {actor_id} ...)"
        ) from None
    except (OSError, ValueError) as exc:
        raise ConsentError(f"{path}: unreadable consent record ({exc})") from None
    try:
        record = ConsentRecord(
            str(data["actor_id"]), _check_date(data["date"], str(path)), tuple(data["scope"]), str(data.get("notes", ""))
        )
    except (KeyError, TypeError):
        raise ConsentError(f"{path}: a consent record needs actor_id, date and scope") from None
    if record.actor_id != actor_id or not record.scope:
        raise ConsentError(f"{path}: the record is for {record.actor_id!r} with scope {list(record.scope)}")
    return record


def read_withdrawals(path: str | os.PathLike) -> dict[str, dict]:
    """actor id -> withdrawal entry, from a withdrawal list (a registry folder or its withdrawals.json).

    A missing file in a registry folder means nobody has withdrawn; a missing file named
    explicitly is an error (a typo must not silently release a withdrawn actor).
    """
    path = Path(path)
    if path.is_dir():
        path = path / WITHDRAWALS
        if not path.exists():
            return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        entries = data["withdrawn"]
        return {str(entry["actor_id"]): dict(entry) for entry in entries}
    except FileNotFoundError:
        raise ConsentError(f"{path}: withdrawal list not found") from None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConsentError(f'{path}: not a withdrawal list ({{"withdrawn": [{{"actor_id": ...}}]}}): {exc}') from None


def withdraw(registry: str | os.PathLike, actor_id: str, date: str, note: str = "") -> None:
    """Put an actor on the registry's withdrawal list (idempotent)."""
    actor_id = _check_actor(actor_id)
    Path(registry).mkdir(parents=True, exist_ok=True)
    path = Path(registry) / WITHDRAWALS
    current = read_withdrawals(registry)
    current[actor_id] = {"actor_id": actor_id, "date": _check_date(date, f"withdrawal of {actor_id}"), "note": note}
    _write_json(path, {"version": 1, "withdrawn": [current[k] for k in sorted(current)]})


def require_consent(registry: str | os.PathLike, actor_id: str) -> ConsentRecord:
    """The record that allows recording ``actor_id``; :class:`ConsentError` when missing or withdrawn."""
    record = read_consent(registry, actor_id)
    withdrawn = read_withdrawals(registry)
    if actor_id in withdrawn:
        raise ConsentError(f"actor {actor_id} withdrew consent on {withdrawn[actor_id].get('date')}; they must not be recorded")
    return record


def consent_status(registry: str | os.PathLike, actor_id: str) -> dict:
    """``{"consent": record or {"error": why not}, "withdrawn": withdrawal entry or None}`` of ``actor_id``
    in ``registry`` (``mmface4d rig consent show``)."""
    withdrawn = read_withdrawals(registry).get(actor_id)
    try:
        record = read_consent(registry, actor_id).as_dict()
    except ConsentError as exc:
        record = {"error": str(exc)}
    return {"consent": record, "withdrawn": withdrawn}
