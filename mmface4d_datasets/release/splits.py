"""The split rule (DESIGN.md, A release) and the `meta/splits.json` manifest it freezes.

Rule `splits-v1`, deterministic from the seed and independent of numpy's random streams:

1. Subjects with at least two sequences are eligible for test (a test sequence needs a style
   reference from the same subject); the others always go to train.
2. n_test = round(31 / 431 x eligible), halves rounded up; at least 1 when some subject is eligible
   and the release has two or more subjects; never all subjects (one is kept for train).
3. Strata: (gender, age bin) of each eligible subject, age bins `<25`, `25-34`, `35-44`, `45+`,
   `unknown`; a subject's gender and age are those of its first sequence (by id) that has them.
   n_test is shared among strata in proportion to their size by the largest-remainder method
   (ties: larger stratum, then stratum name).
4. Within a stratum, subjects are ordered by sha256(f"{seed}/subject/{subject_id}") and the first
   ones go to test.
5. Style reference of a test sequence: among the OTHER sequences of its subject, the one with the
   smallest sha256(f"{seed}/style/{id}/{candidate_id}").

For 431 eligible identities step 2 gives exactly 31 test and 400 train subjects.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable

SPLIT_RULE_VERSION = "splits-v1"
TEST_SHARE = (31, 431)
AGE_BINS = ("<25", "25-34", "35-44", "45+", "unknown")
SPLIT_RULE = (
    "splits-v1: by subject; subjects with >= 2 sequences are eligible for test; n_test = round(31/431 x eligible), "
    "at least 1 when possible, never every subject; stratified by (gender, age bin <25/25-34/35-44/45+/unknown) "
    "with largest-remainder quotas; within a stratum subjects ordered by sha256('{seed}/subject/{subject_id}'); "
    "style reference of a test sequence = the other sequence of its subject with the smallest "
    "sha256('{seed}/style/{id}/{candidate}')"
)


def age_bin(age) -> str:
    """The stratification bin of an age in years (None -> 'unknown')."""
    if age is None:
        return "unknown"
    age = int(age)
    if age < 25:
        return "<25"
    if age < 35:
        return "25-34"
    if age < 45:
        return "35-44"
    return "45+"


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def count_test_subjects(eligible: int, total_subjects: int) -> int:
    """Rule step 2: how many eligible subjects go to test."""
    numerator, denominator = TEST_SHARE
    count = (2 * numerator * eligible + denominator) // (2 * denominator)  # round half up
    if eligible >= 1 and total_subjects >= 2:
        count = max(count, 1)
    return max(0, min(count, eligible, total_subjects - 1))


def _quotas(sizes: dict[tuple[str, str], int], n_test: int) -> dict[tuple[str, str], int]:
    total = sum(sizes.values())
    if total == 0 or n_test == 0:
        return {key: 0 for key in sizes}
    quotas = {key: (n_test * size) // total for key, size in sizes.items()}
    remainders = sorted(sizes, key=lambda key: (-((n_test * sizes[key]) % total), -sizes[key], key))
    for key in remainders[: n_test - sum(quotas.values())]:
        quotas[key] += 1
    return quotas


def assign_splits(sequences: Iterable[dict], seed: int = 0) -> dict:
    """Apply the rule to sequence records and return the `meta/splits.json` manifest.

    sequences: dicts with at least `id`, `subject_id`, `gender`, `age` (one per sequence).
    Returns {"version", "rule", "seed", "test_share", "train": [subject ids], "test": [subject ids],
    "style_reference": {test id: reference id}} with sorted lists and keys.
    """
    by_subject: dict[str, list[dict]] = defaultdict(list)
    for record in sequences:
        by_subject[str(record["subject_id"])].append(record)
    for records in by_subject.values():
        records.sort(key=lambda r: r["id"])

    strata: dict[tuple[str, str], list[str]] = defaultdict(list)
    for subject, records in by_subject.items():
        if len(records) < 2:
            continue
        gender = next((r["gender"] for r in records if r.get("gender")), None) or "unknown"
        age = next((r["age"] for r in records if r.get("age") is not None), None)
        strata[(str(gender), age_bin(age))].append(subject)

    eligible = sum(len(subjects) for subjects in strata.values())
    n_test = count_test_subjects(eligible, len(by_subject))
    quotas = _quotas({key: len(subjects) for key, subjects in strata.items()}, n_test)
    test: set[str] = set()
    for key, subjects in strata.items():
        ordered = sorted(subjects, key=lambda s: (_digest(f"{seed}/subject/{s}"), s))
        test.update(ordered[: quotas[key]])

    style_reference = {}
    for subject in sorted(test):
        ids = [r["id"] for r in by_subject[subject]]
        for sequence_id in ids:
            candidates = [c for c in ids if c != sequence_id]
            style_reference[sequence_id] = min(candidates, key=lambda c: (_digest(f"{seed}/style/{sequence_id}/{c}"), c))

    return {
        "version": SPLIT_RULE_VERSION,
        "rule": SPLIT_RULE,
        "seed": int(seed),
        "test_share": f"{TEST_SHARE[0]}/{TEST_SHARE[1]}",
        "train": sorted(set(by_subject) - test),
        "test": sorted(test),
        "style_reference": dict(sorted(style_reference.items())),
    }


def split_of_subjects(manifest: dict) -> dict[str, str]:
    """subject_id -> split name from a manifest (a subject listed twice keeps its first split)."""
    result: dict[str, str] = {}
    for split in ("train", "test"):
        for subject in manifest.get(split, []):
            result.setdefault(subject, split)
    return result
