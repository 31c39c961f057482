"""`mmface4d quickstart` with the benchmark's steps plugged in after the core's."""

from __future__ import annotations


from mmface4d_datasets.quickstart import STEPS, all_steps


def test_the_benchmark_plugs_its_steps_in_after_the_core():
    names = [step.name for step in all_steps()]
    assert names[: len(STEPS)] == [step.name for step in STEPS]
    assert names[len(STEPS) :] == ["static", "train", "score", "leaderboard"]


# The main job end to end, as the README gives it, on a fresh copy of the repository:
# tests/test_readme_walk.py::test_the_readme_user_path_on_a_fresh_copy.
