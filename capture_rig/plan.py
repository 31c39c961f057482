"""Session plans for the prompter, made in the main environment (the recorder's has no corpus).

``make_plan("A017", first_take=1700)`` draws 100 sentences from the corpus
(:mod:`mmface4d_datasets.synthetic.corpus`, balanced over the seven emotions: any two emotions'
counts differ by at most one, as the paper's actors read about equally many per emotion) and gives
them consecutive six-digit take ids. The plan is JSON (:mod:`capture_rig.recorder.prompter` reads it).
"""

from __future__ import annotations

import os
from pathlib import Path

from capture_rig.errors import RigError
from capture_rig.recorder.prompter import PLAN_VERSION

SENTENCES_PER_ACTOR = 100


def make_plan(actor_id: str, *, first_take: int, sentences: int = SENTENCES_PER_ACTOR, seed: int = 0) -> dict:
    import zlib

    import numpy as np

    from mmface4d_datasets.synthetic.corpus import CORPUS_VERSION, draw_sentences

    if sentences < 1:
        raise RigError(f"a plan needs at least one sentence, got {sentences}")
    if first_take < 0 or first_take + sentences > 1_000_000:
        raise RigError(f"take ids {first_take}..{first_take + sentences - 1} do not fit in six digits")
    # the actor's own draw: the same actor and seed always give the same plan
    rng = np.random.default_rng([seed, zlib.crc32(actor_id.encode("utf-8"))])
    items = [
        {"take_id": f"{first_take + n:06d}", "sentence_id": s.sentence_id, "emotion": s.emotion, "text": s.text}
        for n, s in enumerate(draw_sentences(sentences, rng))
    ]
    return {"version": PLAN_VERSION, "actor_id": actor_id, "seed": seed, "corpus_version": CORPUS_VERSION, "items": items}


def write_plan(path: str | os.PathLike, plan: dict) -> Path:
    from mmface4d_datasets.files import atomic_write_bytes, json_bytes

    atomic_write_bytes(path, json_bytes(plan))
    return Path(path)


def write_session_plan(
    path: str | os.PathLike, actor_id: str, *, first_take: int, sentences: int = SENTENCES_PER_ACTOR, seed: int = 0
) -> dict:
    """Make the plan of ``actor_id`` (:func:`make_plan`), write it to ``path`` and return its summary:
    the path, the actor, the sentence count and the sentences per emotion (``mmface4d rig plan``)."""
    plan = make_plan(actor_id, first_take=first_take, sentences=sentences, seed=seed)
    write_plan(path, plan)
    counts: dict[str, int] = {}
    for item in plan["items"]:
        counts[item["emotion"]] = counts.get(item["emotion"], 0) + 1
    return {"plan": str(path), "actor_id": actor_id, "sentences": len(plan["items"]), "per_emotion": counts}
