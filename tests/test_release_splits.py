"""The split rule: 431 identities -> 400/31, eligibility, stratification, frozen style references."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings, strategies as st

from mmface4d_datasets.release.splits import age_bin, assign_splits, count_test_subjects


def records(subject_count: int, sequences_per_subject=3, seed: int = 0):
    genders = ["female", "male"]
    result = []
    for s in range(subject_count):
        count = sequences_per_subject(s) if callable(sequences_per_subject) else sequences_per_subject
        for k in range(count):
            result.append(
                {
                    "id": f"P{s:04d}/{s * 1000 + k:06d}",
                    "subject_id": f"P{s:04d}",
                    "gender": genders[(s * 7 + seed) % 2],
                    "age": 18 + (s * 13) % 50,
                }
            )
    return result


def test_full_431_identities_give_exactly_400_train_31_test():
    manifest = assign_splits(records(431), seed=0)
    assert len(manifest["test"]) == 31 and len(manifest["train"]) == 400
    assert set(manifest["train"]).isdisjoint(manifest["test"])
    assert len(manifest["style_reference"]) == 31 * 3
    assert manifest["version"] == "splits-v1" and "31/431" in manifest["rule"]


def test_deterministic_for_a_seed_and_different_for_another():
    first = assign_splits(records(431), seed=0)
    assert assign_splits(list(reversed(records(431))), seed=0) == first  # input order does not matter
    assert assign_splits(records(431), seed=1)["test"] != first["test"]


def test_stratified_by_gender_and_age():
    data = records(431)
    manifest = assign_splits(data, seed=3)
    subject = {r["subject_id"]: r for r in data}
    by_gender = Counter(subject[s]["gender"] for s in manifest["test"])
    # 431 subjects, about half of each gender: each gets 15 or 16 of the 31
    assert set(by_gender.values()) <= {15, 16}
    bins = Counter(age_bin(subject[s]["age"]) for s in manifest["test"])
    all_bins = Counter(age_bin(r["age"]) for r in subject.values())
    for name, total in all_bins.items():
        assert abs(bins[name] - 31 * total / 431) <= 2  # strata of (gender, age bin) share quotas proportionally


def test_single_sequence_subjects_never_in_test():
    data = records(40, sequences_per_subject=lambda s: 1 if s % 2 else 4)
    manifest = assign_splits(data, seed=0)
    singles = {f"P{s:04d}" for s in range(40) if s % 2}
    assert singles.isdisjoint(manifest["test"]) and manifest["test"]
    assert len(manifest["test"]) == count_test_subjects(20, 40) == 1


def test_one_subject_stays_in_train_and_small_sets_get_one_test_subject():
    assert assign_splits(records(1, 5))["test"] == []
    assert assign_splits(records(1, 1))["train"] == ["P0000"]
    assert len(assign_splits(records(8, 3))["test"]) == 1
    assert count_test_subjects(0, 5) == 0 and count_test_subjects(2, 2) == 1


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=4), min_size=1, max_size=60), st.integers(0, 5))
def test_style_reference_is_another_sequence_of_the_same_test_subject(counts, seed):
    data = records(len(counts), sequences_per_subject=lambda s: counts[s])
    manifest = assign_splits(data, seed=seed)
    ids = {r["id"]: r["subject_id"] for r in data}
    test_ids = {i for i, s in ids.items() if s in manifest["test"]}
    assert set(manifest["style_reference"]) == test_ids
    for target, reference in manifest["style_reference"].items():
        assert reference != target and ids[reference] == ids[target]
    assert set(manifest["train"]) | set(manifest["test"]) == set(ids.values())


@pytest.mark.parametrize("age, expected", [(None, "unknown"), (18, "<25"), (25, "25-34"), (44, "35-44"), (70, "45+")])
def test_age_bins(age, expected):
    assert age_bin(age) == expected
