"""The sentence prompter's logic: the session plan, where the session stands, and the keys.

No drawing here (:mod:`capture_rig.recorder.screen` draws; tests drive this headless). A PLAN
(``plan.json``, made in the main environment by ``mmface4d rig plan``) lists an actor's prompts:
``{"version": 1, "actor_id", "items": [{"take_id", "sentence_id", "emotion", "text"}, ...]}``.
The STATE (``state.json`` in the session folder, rewritten atomically after every change) holds
each item's status: ``pending``, ``recorded``, ``skipped`` or ``bad`` (recorded but marked bad:
conversion leaves it out), its attempts, and the position. A session started again with the same
folder resumes where it stopped; a take that was being recorded when the program died is pending
again.

Keys (:data:`KEYS`): ``r`` starts recording the current prompt and, pressed again, stops it;
``t`` retakes the last recorded prompt (its files are replaced); ``s`` skips the current prompt;
``b`` marks the last recorded take bad; ``q`` quits (the state is kept).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

PLAN_VERSION = 1
STATE_VERSION = 1
KEYS = {
    "r": "record / stop",
    "t": "retake the last take",
    "s": "skip this sentence",
    "b": "mark the last take bad",
    "q": "quit (resume later)",
}
STATUSES = ("pending", "recorded", "skipped", "bad")


class PlanError(ValueError):
    pass


def read_plan(path: str | os.PathLike) -> dict:
    """A session plan, checked (unique six-digit take ids, a sentence and text per item)."""
    path = Path(path)
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PlanError(f"{path}: cannot read the session plan ({exc})") from None
    items = plan.get("items") if isinstance(plan, dict) else None
    if plan.get("version") != PLAN_VERSION or not isinstance(items, list) or not items or not plan.get("actor_id"):
        raise PlanError(f"{path}: not a version-{PLAN_VERSION} session plan with actor_id and items")
    seen = set()
    for n, item in enumerate(items):
        take_id = str(item.get("take_id", ""))
        if (
            len(take_id) != 6
            or not (take_id.isascii() and take_id.isdigit())
            or take_id in seen
            or not item.get("text")
            or not item.get("sentence_id")
        ):
            raise PlanError(f"{path}: item {n} needs a unique six-digit take_id, a sentence_id and a text: {item}")
        seen.add(take_id)
    return plan


@dataclass(frozen=True)
class Action:
    """What the runner must do after a key: ``start`` / ``stop`` a recording of ``item``,
    ``mark_bad`` (rewrite the take log of ``item``), ``quit``, ``done``, or ``none``."""

    kind: str
    item: dict | None = None
    message: str = ""


class PromptSession:
    def __init__(self, plan: dict, state_path: str | os.PathLike):
        self.plan = plan
        self.items = plan["items"]
        self.state_path = Path(state_path)
        self.recording = False
        self.state = self._load()

    # ---------------------------------------------------------------- state
    def _fresh(self) -> dict:
        return {
            "version": STATE_VERSION,
            "actor_id": self.plan["actor_id"],
            "position": 0,
            "last_recorded": None,
            "items": {item["take_id"]: {"status": "pending", "attempts": 0} for item in self.items},
        }

    def _load(self) -> dict:
        if not self.state_path.exists():
            state = self._fresh()
            self._save(state)
            return state
        state = json.loads(self.state_path.read_text(encoding="utf-8"))
        if state.get("actor_id") != self.plan["actor_id"] or set(state.get("items", {})) != {i["take_id"] for i in self.items}:
            raise PlanError(
                f"{self.state_path}: this session's state belongs to another plan (actor {state.get('actor_id')}); use a new session folder"
            )
        for entry in state["items"].values():
            if entry["status"] == "recording":  # the program died during this take
                entry["status"] = "pending"
        state["position"] = self._next_pending(state, 0)
        self._save(state)
        return state

    def _save(self, state=None) -> None:
        state = state or self.state
        from mmface4d_datasets.files import atomic_write_bytes, json_bytes

        atomic_write_bytes(self.state_path, json_bytes(state))

    def _next_pending(self, state, start: int) -> int:
        for n in range(start, len(self.items)):
            if state["items"][self.items[n]["take_id"]]["status"] == "pending":
                return n
        for n in range(0, start):
            if state["items"][self.items[n]["take_id"]]["status"] == "pending":
                return n
        return len(self.items)

    # ---------------------------------------------------------------- views
    @property
    def current(self) -> dict | None:
        position = self.state["position"]
        return self.items[position] if position < len(self.items) else None

    @property
    def done(self) -> bool:
        return self.current is None and not self.recording

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for entry in self.state["items"].values():
            counts[entry["status"]] = counts.get(entry["status"], 0) + 1
        return counts

    def status(self, take_id: str) -> str:
        return self.state["items"][take_id]["status"]

    # ---------------------------------------------------------------- keys
    def press(self, key: str) -> Action:
        """Apply a key; returns what the runner must do."""
        if key == "q":
            if self.recording:
                return Action("none", message="stop the recording (r) before quitting")
            self._save()
            return Action("quit")
        if self.recording:
            if key == "r":
                return Action("stop", self.current)
            return Action("none", message="recording: press r to stop")
        item = self.current
        if key == "r":
            if item is None:
                return Action("done", message="every sentence of the plan is done")
            self.recording = True
            entry = self.state["items"][item["take_id"]]
            entry["status"] = "recording"
            entry["attempts"] += 1
            self._save()
            return Action("start", item)
        if key == "s":
            if item is None:
                return Action("done")
            self.state["items"][item["take_id"]]["status"] = "skipped"
            self._advance()
            return Action("none", item, f"skipped {item['take_id']}")
        if key in ("t", "b"):
            last = self.state["last_recorded"]
            if last is None:
                return Action("none", message="no take recorded yet")
            entry = self.state["items"][last]
            item = next(i for i in self.items if i["take_id"] == last)
            if key == "b":
                entry["status"] = "bad"
                self._save()
                return Action("mark_bad", item, f"take {last} marked bad")
            entry["status"] = "pending"
            self.state["position"] = self.items.index(item)
            self._save()
            return Action("none", item, f"retake {last}: press r to record it again")
        return Action("none", message=f"unknown key {key!r}")

    def finished(self, ok: bool, message: str = "") -> None:
        """The runner's report after a ``stop``: the take was written (``ok``) or failed."""
        item = self.current
        self.recording = False
        entry = self.state["items"][item["take_id"]]
        if ok:
            entry["status"] = "recorded"
            self.state["last_recorded"] = item["take_id"]
            self._advance()
        else:
            entry["status"] = "pending"
            entry.setdefault("failures", []).append(message)
            self._save()

    def _advance(self) -> None:
        self.state["position"] = self._next_pending(self.state, self.state["position"] + 1)
        self._save()
