"""`mmface4d build push`: the plan, the calls up to the network, retries and the offline error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from builders import push
from builders.push import HubUnreachableError, PushError, PushPlan, plan_push, push_release


LISTED = {"meta/splits.json": 5, "data/train/shard-00000.parquet": 300, "data/train/shard-00001.parquet": 200}
NOT_LISTED = {
    ".staging/000337.npz": 50,
    "data/.shard.tmp": 7,
    ".build-report.json": 3,
    "notes.txt": 4,
    "photos/face.jpg": 9,
    "data/train/extra.parquet": 11,
}


@pytest.fixture
def fake_release(tmp_path):
    """A release folder whose meta/info.json lists three files, with a card, the build's hidden
    bookkeeping and a person's stray files (notes, photos, an extra Parquet file) beside them."""
    root = tmp_path / "release"
    for relative, size in {"README.md": 10, **LISTED, **NOT_LISTED}.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x" * size)
    info = {"format_version": "1.0", "files": {name: {"bytes": size} for name, size in LISTED.items()}}
    (root / "meta" / "info.json").write_text(json.dumps(info))
    return root


def test_plan_lists_exactly_the_release_files_with_sizes_and_folder_counts(fake_release):
    plan = plan_push(fake_release)
    assert [f.path for f in plan.files] == [
        "README.md",
        "data/train/shard-00000.parquet",
        "data/train/shard-00001.parquet",
        "meta/info.json",
        "meta/splits.json",
    ]
    info_size = (fake_release / "meta" / "info.json").stat().st_size
    assert [f.size for f in plan.files] == [10, 300, 200, info_size, 5]
    assert plan.total_bytes == 515 + info_size
    assert plan.files_per_folder == {"": 1, "data/train": 2, "meta": 2}
    assert plan.commits == 1 and plan.problems() == []
    assert plan.left_out == ["data/train/extra.parquet", "notes.txt", "photos/face.jpg"]


def test_the_cards_images_are_part_of_the_release(fake_release):
    figures = fake_release / "figures"
    figures.mkdir()
    for name in ("emotions.png", "durations.svg", "unused.png"):
        (figures / name).write_bytes(b"img")
    (fake_release.parent / "outside.png").write_bytes(b"img")
    (fake_release / "README.md").write_text(
        '# card\n![emotions](figures/emotions.png)\n<img src="./figures/durations.svg" width=300>\n'
        "![web](https://example.org/a.png) ![up](../outside.png) ![gone](figures/missing.png)\n"
    )
    plan = plan_push(fake_release)
    paths = [f.path for f in plan.files]
    assert "figures/emotions.png" in paths and "figures/durations.svg" in paths
    assert "figures/unused.png" not in paths and "figures/unused.png" in plan.left_out
    assert not any("outside" in p or "missing" in p for p in paths)


def test_the_upload_is_restricted_to_the_plan_by_the_hubs_own_filter(fake_release):
    """huggingface_hub's own pattern filter, applied to every file in the folder with the patterns the
    push passes, keeps exactly the plan's files: no notes.txt, no photos/, no extra Parquet file."""
    from huggingface_hub.utils import filter_repo_objects

    (fake_release / "data" / "train" / "shard-0000[1].parquet").write_bytes(b"a name with glob characters")
    api = RecordingApi()
    plan = push_release(fake_release, "org/faces", validate=False, api=api)
    kwargs = api.calls[-1][2]
    everything = [p.relative_to(fake_release).as_posix() for p in fake_release.rglob("*") if p.is_file()]
    uploaded = sorted(filter_repo_objects(everything, allow_patterns=kwargs["allow_patterns"], ignore_patterns=kwargs["ignore_patterns"]))
    assert uploaded == [f.path for f in plan.files]
    assert not any(p.startswith(("notes", "photos")) or "extra" in p or "[" in p for p in uploaded)


def test_plan_reports_breaches_of_the_hub_limits(tmp_path):
    crowded = PushPlan(
        folder=tmp_path,
        files=[push.PlannedFile(f"data/{i}", 1) for i in range(250)],
        files_per_folder={"data": push.MAX_FILES_PER_FOLDER, "meta": 3},
    )
    assert crowded.commits == 3  # 250 files at 100 per commit
    (problem,) = crowded.problems()
    assert "files in folder 'data'" in problem and "fewer than 10000" in problem


def test_plan_refuses_what_is_not_a_release(tmp_path):
    with pytest.raises(PushError, match="not a folder"):
        plan_push(tmp_path / "nothing")
    (tmp_path / ".staging").mkdir()
    (tmp_path / ".staging" / "a").write_bytes(b"1")
    (tmp_path / "notes.txt").write_bytes(b"1")
    with pytest.raises(PushError, match=r"not a release that can be pushed: .*meta/info.json: missing"):
        plan_push(tmp_path)
    (tmp_path / "meta").mkdir()
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"files": {"data/train/shard-00000.parquet": {}}}))
    with pytest.raises(PushError, match=r"lists files that are missing \(README.md, data/train/shard-00000.parquet\)"):
        plan_push(tmp_path)
    (tmp_path / "meta" / "info.json").write_text(json.dumps({"files": {"../../etc/passwd": {}}}))
    with pytest.raises(PushError, match="not a plain path inside the release"):
        plan_push(tmp_path)


class RecordingApi:
    """Stands in for HfApi: records calls; fails the first `failures` upload attempts."""

    def __init__(self, failures=(), upload_name="upload_folder"):
        self.calls = []
        self.failures = list(failures)
        setattr(self, upload_name, self._upload)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def create_branch(self, repo_id, **kwargs):
        self.calls.append(("create_branch", repo_id, kwargs))

    def _upload(self, **kwargs):
        self.calls.append(("upload", kwargs["repo_id"], kwargs))
        if self.failures:
            raise self.failures.pop(0)
        return "commit-info"


def test_push_creates_the_dataset_repo_then_uploads_the_folder(fake_release):
    api = RecordingApi()
    plan = push_release(fake_release, "org/faces", private=True, revision="v1", validate=False, api=api)
    assert len(plan.files) == 5
    (create, branch, upload) = api.calls
    assert create == ("create_repo", "org/faces", {"repo_type": "dataset", "private": True, "exist_ok": True})
    assert branch == ("create_branch", "org/faces", {"branch": "v1", "repo_type": "dataset", "exist_ok": True})
    kwargs = upload[2]
    assert kwargs["folder_path"] == str(fake_release) and kwargs["repo_type"] == "dataset"
    assert kwargs["revision"] == "v1"
    assert ".*" in kwargs["ignore_patterns"] and "**/.*" in kwargs["ignore_patterns"]


def test_push_prefers_upload_large_folder_where_the_hub_has_it(fake_release):
    api = RecordingApi(upload_name="upload_large_folder")
    push_release(fake_release, "org/faces", validate=False, api=api)
    upload = api.calls[-1][2]
    assert upload["repo_type"] == "dataset" and upload["private"] is False
    assert upload["folder_path"] == str(fake_release)


def test_push_through_the_real_hfapi_class_stops_at_the_network_call(fake_release, monkeypatch):
    """The installed huggingface_hub's HfApi, with its network methods replaced: the arguments it gets."""
    import huggingface_hub

    seen = {}
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", lambda self, repo_id, **kw: seen.setdefault("create", (repo_id, kw)))
    name = "upload_large_folder" if hasattr(huggingface_hub.HfApi, "upload_large_folder") else "upload_folder"
    monkeypatch.setattr(huggingface_hub.HfApi, name, lambda self, **kw: seen.setdefault("upload", kw))
    push_release(fake_release, "org/faces", validate=False, token="hf_test")
    assert seen["create"] == ("org/faces", {"repo_type": "dataset", "private": False, "exist_ok": True})
    assert seen["upload"]["repo_id"] == "org/faces" and seen["upload"]["folder_path"] == str(fake_release)


def test_transient_failures_are_retried_with_backoff(fake_release):
    class ServerError(Exception):
        response = type("Response", (), {"status_code": 503})()

    api = RecordingApi(failures=[ConnectionResetError("reset"), ServerError("busy")])
    waits = []
    push_release(fake_release, "org/faces", validate=False, api=api, retries=3, backoff_s=0.5, sleep=waits.append)
    assert [c[0] for c in api.calls].count("upload") == 3
    assert waits == [0.5, 1.0]


def test_a_client_error_is_not_retried(fake_release):
    class Forbidden(Exception):
        response = type("Response", (), {"status_code": 403})()

    api = RecordingApi(failures=[Forbidden("no write access")])
    with pytest.raises(Forbidden):
        push_release(fake_release, "org/faces", validate=False, api=api, sleep=lambda s: None)
    assert [c[0] for c in api.calls].count("upload") == 1


def test_unreachable_hub_after_retries_says_so(fake_release):
    api = RecordingApi(failures=[ConnectionError("down")] * 3)
    with pytest.raises(HubUnreachableError, match="could not be reached while uploading 5 files.*run the same command again"):
        push_release(fake_release, "org/faces", validate=False, api=api, retries=2, sleep=lambda s: None)


@pytest.mark.parametrize("repo_id", ["faces", "a/b/c", "/faces", "org/"])
def test_repo_id_must_be_org_slash_name(fake_release, repo_id):
    with pytest.raises(PushError, match="expected ORG/NAME"):
        push_release(fake_release, repo_id, validate=False, api=RecordingApi())


def run_cli(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "mmface4d_datasets", "build", "push", *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=120,
    )


def test_cli_offline_push_fails_clearly_and_uploads_nothing(fake_release):
    out = run_cli(str(fake_release), "--repo-id", "org/faces", "--skip-validation", "--retries", "0", env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 2, out.stderr
    assert "could not be reached" in out.stderr and "nothing was uploaded" in out.stderr
    assert "Traceback" not in out.stderr


def test_cli_dry_run_prints_the_plan(fake_release):
    out = run_cli(str(fake_release), "--repo-id", "org/faces", "--dry-run", env={"HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["dry_run"] is True and plan["repo_id"] == "org/faces" and plan["num_files"] == 5
    assert plan["files_per_folder"]["data/train"] == 2 and plan["problems"] == []
    assert {f["path"]: f["size"] for f in plan["files"]} == {
        "README.md": 10,
        **LISTED,
        "meta/info.json": (fake_release / "meta" / "info.json").stat().st_size,
    }
    assert plan["left_out"] == ["data/train/extra.parquet", "notes.txt", "photos/face.jpg"]
    assert "notes.txt" not in json.dumps(plan["files"]) and "photos" not in json.dumps(plan["files"])


def test_push_validates_the_release_first(tmp_path):
    from builders.build import build_release
    from test_builders_support import small_take

    small_take(tmp_path / "src", "000001")
    small_take(tmp_path / "src", "000002", sentence="210001", seed=1)
    build_release(tmp_path / "src", tmp_path / "release", progress=False)
    api = RecordingApi()
    plan = push_release(tmp_path / "release", "org/faces", api=api)
    assert "meta/info.json" in [f.path for f in plan.files] and api.calls[-1][0] == "upload"
    assert not any(f.path.startswith(".") for f in plan.files)  # the build report stays home

    # a person's files put into the release folder are not part of the release: not uploaded, and
    # `mmface4d validate` names them (the release itself stays valid)
    (tmp_path / "release" / "notes.txt").write_text("who was recorded when")
    (tmp_path / "release" / "photos").mkdir()
    (tmp_path / "release" / "photos" / "subject.jpg").write_bytes(b"a face")
    assert push_release(tmp_path / "release", "org/faces", api=RecordingApi()).files == plan.files
    checked = subprocess.run(
        [sys.executable, "-m", "mmface4d_datasets", "validate", str(tmp_path / "release")], capture_output=True, text=True, timeout=120
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "notes.txt: not part of the release" in checked.stdout
    assert "photos/subject.jpg: not part of the release" in checked.stdout

    (tmp_path / "release" / "meta" / "splits.json").write_text("{}")
    untouched = RecordingApi()
    with pytest.raises(PushError, match=r"does not validate, nothing was uploaded(?s:.*)splits.json"):
        push_release(tmp_path / "release", "org/faces", api=untouched)
    assert untouched.calls == []


def test_a_hub_client_that_cannot_restrict_the_upload_is_refused(fake_release):
    class OldApi:
        calls = []

        def create_repo(self, repo_id, **kwargs):
            self.calls.append("create_repo")

        def upload_large_folder(self, repo_id, folder_path, repo_type=None, revision=None, ignore_patterns=None):
            self.calls.append("upload")

    api = OldApi()
    with pytest.raises(PushError, match="cannot be restricted to the release's files"):
        push_release(fake_release, "org/faces", validate=False, api=api)
    assert "upload" not in api.calls
