"""`stead backup` and `stead restore`, on the embedded default and on PostgreSQL: a backup taken
while 50 runs execute restores into a fresh target where everything finished compares equal
through the API and every run that had not finished completes; bad archives and non-empty targets
are refused in one line with the target untouched."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tarfile
import time
from collections.abc import Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from minio import Minio

from stead.backup.archive import file_entry, write_archive
from stead.backup.manifest import Manifest
from stead.storage.revisions import known_revisions
from tests.conftest import GRAPHS_CONFIG
from tests.support.postgres import stead_migrate
from tests.support.schema import migrate_sqlite_to
from tests.support.servers import free_port, stead_server
from tests.support.services import S3, postgres_server, redis_server, s3_server

RUNNING_RUNS = 50
FINISHED_THREADS = 5
HEAD = known_revisions()[-1]


@dataclass
class Target:
    """Where a server keeps its data: a data folder, and on PostgreSQL a database too."""

    data_dir: Path
    env: dict[str, str]


@dataclass
class Runtime:
    name: str
    source: Target
    fresh: Target


@pytest.fixture(scope="module", params=["embedded", "postgres"])
def runtime(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Runtime]:
    root = tmp_path_factory.mktemp(request.param)
    if request.param == "embedded":
        yield Runtime("embedded", Target(root / "source", {}), Target(root / "fresh", {}))
        return
    with ExitStack() as stack:
        pg = stack.enter_context(postgres_server(databases=("source", "fresh")))
        redis = stack.enter_context(redis_server())
        assert stead_migrate(GRAPHS_CONFIG, pg.url("source")).returncode == 0
        yield Runtime(
            "postgres",
            Target(root / "source", {"DATABASE_URI": pg.url("source"), "REDIS_URI": redis.url}),
            # Its own Redis key prefix: the source's replay buffers are not the restored server's.
            Target(
                root / "fresh",
                {
                    "DATABASE_URI": pg.url("fresh"),
                    "REDIS_URI": redis.url,
                    "REDIS_KEY_PREFIX": "restored:",
                },
            ),
        )


def stead(
    command: str, target: Target, *args: str, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stead", command, "--config", str(GRAPHS_CONFIG),
         "--data-dir", str(target.data_dir), *args],
        env={**os.environ, **target.env, **(env or {})},
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def populate(url: str) -> list[str]:
    """Threads with finished runs, an assistant, store items and a cron; the thread ids."""
    thread_ids = []
    for n in range(FINISHED_THREADS):
        thread = httpx.post(f"{url}/threads", json={"metadata": {"batch": "finished"}}).json()
        answer = httpx.post(
            f"{url}/threads/{thread['thread_id']}/runs/wait",
            json={"assistant_id": "echo", "input": {"text": f"kept {n}"}},
            timeout=60,
        )
        assert answer.status_code == 200, answer.text
        thread_ids.append(thread["thread_id"])
    made = httpx.post(f"{url}/assistants", json={"graph_id": "echo", "name": "mine"})
    assert made.status_code == 200, made.text
    for n in range(3):
        item = {"namespace": ["backup", "items"], "key": f"k{n}", "value": {"n": n}}
        assert httpx.put(f"{url}/store/items", json=item).status_code == 204
    cron = {"assistant_id": "echo", "schedule": "0 0 1 1 *", "input": {"text": "yearly"}}
    assert httpx.post(f"{url}/runs/crons", json=cron).status_code == 200
    return thread_ids


def start_running_runs(url: str) -> list[tuple[str, str]]:
    """RUNNING_RUNS background runs of the `slow` graph, each on its own thread."""
    started = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(RUNNING_RUNS):
            thread_id = client.post("/threads", json={}).json()["thread_id"]
            run = client.post(
                f"/threads/{thread_id}/runs",
                json={"assistant_id": "slow", "input": {"seconds": 3}},
            ).json()
            started.append((thread_id, run["run_id"]))
    return started


def api_dump(url: str, thread_ids: list[str]) -> dict[str, Any]:
    with httpx.Client(base_url=url, timeout=30) as client:
        threads = {
            tid: {
                "thread": client.get(f"/threads/{tid}").json(),
                "state": client.get(f"/threads/{tid}/state").json(),
                "history": client.post(f"/threads/{tid}/history", json={}).json(),
                "runs": client.get(f"/threads/{tid}/runs").json(),
            }
            for tid in thread_ids
        }
        search = {"namespace_prefix": ["backup"], "limit": 100}
        return {
            "threads": threads,
            "assistants": client.post("/assistants/search", json={"limit": 100}).json(),
            "store": client.post("/store/items/search", json=search).json(),
            "crons": client.post("/runs/crons/search", json={}).json(),
        }


def fingerprint(target: Target) -> dict[str, str]:
    """The target's files, by content: what a refused restore must leave as it was."""
    if not target.data_dir.exists():
        return {}
    return {
        str(path.relative_to(target.data_dir)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(target.data_dir.rglob("*"))
        if path.is_file()
    }


@pytest.fixture(scope="module")
def backed_up(runtime: Runtime, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A backup taken while RUNNING_RUNS runs execute, and the API's view of what had finished."""
    archive = tmp_path_factory.mktemp("archives") / f"{runtime.name}.tar.gz"
    with stead_server(GRAPHS_CONFIG, runtime.source.data_dir, runtime.source.env) as server:
        finished = populate(server.url)
        before = api_dump(server.url, finished)
        unfinished = start_running_runs(server.url)
        time.sleep(1)
        done = stead("backup", runtime.source, "--output", str(archive))
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == str(archive)
    return {"archive": archive, "before": before, "finished": finished, "unfinished": unfinished}


def test_a_restored_backup_compares_equal_and_unfinished_runs_complete(
    runtime: Runtime, backed_up: dict[str, Any]
) -> None:
    restored = stead("restore", runtime.fresh, str(backed_up["archive"]))
    assert restored.returncode == 0, restored.stderr
    assert_restored(runtime.fresh, restored.stdout, backed_up)


def test_an_embedded_backup_moves_into_postgresql(
    runtime: Runtime, backed_up: dict[str, Any], tmp_path: Path
) -> None:
    if runtime.name != "embedded":
        pytest.skip("a move starts from the embedded default")
    with postgres_server(databases=("moved",)) as pg, redis_server() as redis:
        target = Target(
            tmp_path / "data", {"DATABASE_URI": pg.url("moved"), "REDIS_URI": redis.url}
        )
        moved = stead("restore", target, str(backed_up["archive"]))
        assert moved.returncode == 0, moved.stderr
        assert "moving the embedded data into PostgreSQL" in moved.stderr
        assert f"copied {FINISHED_THREADS + RUNNING_RUNS} row(s) of thread" in moved.stderr
        assert_restored(target, moved.stdout, backed_up)
        with psycopg.connect(pg.url("moved")) as conn:
            blobs = conn.execute("SELECT count(*) FROM checkpoint_blobs").fetchone()
        assert blobs is not None and blobs[0] > 0  # the PostgreSQL saver's own layout
        again = stead("restore", target, str(backed_up["archive"]))
        assert again.returncode == 1
        assert "already holds data" in again.stderr.strip().splitlines()[-1]


def assert_restored(target: Target, output: str, backed_up: dict[str, Any]) -> None:
    """What had finished compares equal through the API; every other run completes."""
    queued_again = int(output.split(";")[1].split()[0])
    assert 0 < queued_again <= RUNNING_RUNS
    with stead_server(GRAPHS_CONFIG, target.data_dir, target.env) as server:
        assert_serves_what_was_backed_up(server.url, backed_up)


def assert_serves_what_was_backed_up(url: str, backed_up: dict[str, Any]) -> None:
    """What had finished compares equal through the API, and every other run succeeds."""
    assert api_dump(url, backed_up["finished"]) == backed_up["before"]
    with httpx.Client(base_url=url, timeout=120) as client:
        # The totals (on PostgreSQL told by thread_tally) count each thread once.
        threads = FINISHED_THREADS + RUNNING_RUNS
        assert client.post("/threads/count", json={}).json() == threads
        found = client.post("/threads/search", json={"limit": 1})
        assert found.headers["X-Pagination-Total"] == str(threads)
        for thread_id, run_id in backed_up["unfinished"]:
            client.get(f"/threads/{thread_id}/runs/{run_id}/join")
            run = client.get(f"/threads/{thread_id}/runs/{run_id}").json()
            assert run["status"] == "success", run
            state = client.get(f"/threads/{thread_id}/state").json()
            assert state["values"]["done"] is True


def test_the_manifest_says_what_the_backup_holds(
    runtime: Runtime, backed_up: dict[str, Any]
) -> None:
    with tarfile.open(backed_up["archive"]) as archive:
        names = archive.getnames()
        manifest = json.loads(archive.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names[0] == "manifest.json"
    assert manifest["runtime"] == runtime.name
    assert manifest["schema_revision"] == HEAD
    assert set(manifest["files"]) == set(names[1:])
    expected = {"postgres.dump"} if runtime.name == "postgres" else {
        "stead.sqlite", "checkpoints.sqlite", "store.sqlite"}  # fmt: skip
    assert set(names[1:]) == expected
    assert all(len(entry["sha256"]) == 64 for entry in manifest["files"].values())


def test_a_target_that_holds_data_is_refused_unless_forced(
    runtime: Runtime, backed_up: dict[str, Any]
) -> None:
    before = fingerprint(runtime.source)
    refused = stead("restore", runtime.source, str(backed_up["archive"]))
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines()[-1].startswith("stead: error: ")
    assert "already holds data; pass --force" in refused.stderr
    assert fingerprint(runtime.source) == before


def bad_archive(good: Path, folder: Path, kind: str) -> Path:
    data = good.read_bytes()
    bad = folder / f"{kind}.tar.gz"
    if kind == "truncated":
        bad.write_bytes(data[: len(data) // 2])
    elif kind == "corrupt":
        flipped = bytearray(data)
        flipped[len(data) // 2] ^= 0xFF
        bad.write_bytes(bytes(flipped))
    else:
        bad.write_bytes(rewritten(good, {"schema_revision": "9999"}))
    return bad


def rewritten(good: Path, manifest_change: dict[str, Any]) -> bytes:
    """The archive with its manifest changed and its files as they were."""
    out = io.BytesIO()
    with tarfile.open(good) as source, tarfile.open(fileobj=out, mode="w:gz") as target:
        for member in source.getmembers():
            body = source.extractfile(member)
            assert body is not None
            data = body.read()
            if member.name == "manifest.json":
                data = json.dumps({**json.loads(data), **manifest_change}).encode()
                member.size = len(data)
            target.addfile(member, io.BytesIO(data))
    return out.getvalue()


@pytest.mark.parametrize(
    ("kind", "text"),
    [
        ("truncated", "is corrupt or truncated"),
        ("corrupt", "corrupt"),
        ("newer", f"the backup's schema 9999 is newer than this Stead's ({HEAD})"),
    ],
)
def test_a_bad_archive_is_one_line_and_the_target_is_untouched(
    runtime: Runtime, backed_up: dict[str, Any], tmp_path: Path, kind: str, text: str
) -> None:
    bad = bad_archive(backed_up["archive"], tmp_path, kind)
    target = Target(tmp_path / "target", runtime.fresh.env)
    refused = stead("restore", target, str(bad), "--force")
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("stead: error: ") and text in last, refused.stderr
    assert not target.data_dir.exists()
    if runtime.name == "postgres":
        # The fresh database holds what the first test restored, unchanged by the refusal.
        with psycopg.connect(runtime.fresh.env["DATABASE_URI"]) as conn:
            rows = conn.execute("SELECT thread_id FROM thread").fetchall()
        assert {row[0] for row in rows} >= set(backed_up["finished"])


def test_a_missing_pg_dump_is_named(runtime: Runtime, tmp_path: Path) -> None:
    if runtime.name != "postgres":
        pytest.skip("the embedded runtime needs no client tools")
    done = stead("backup", runtime.source, "--output", str(tmp_path / "x.tar.gz"),
                 env={"PATH": str(tmp_path)})  # fmt: skip
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1].startswith("stead: error: pg_dump is not installed")
    assert not list(tmp_path.glob("*.tar.gz*"))


def test_a_backup_from_an_older_schema_is_migrated_forward(
    runtime: Runtime, backed_up: dict[str, Any], tmp_path: Path
) -> None:
    if runtime.name != "embedded":
        pytest.skip("one runtime suffices: the migration path is the same")
    older = tmp_path / "older.tar.gz"
    with tarfile.open(backed_up["archive"]) as archive:
        archive.extractall(tmp_path / "files", filter="data")
    files = {
        name: tmp_path / "files" / name
        for name in ("stead.sqlite", "checkpoints.sqlite", "store.sqlite")
    }
    migrate_sqlite_to(files["stead.sqlite"], "0004", "downgrade")
    manifest = json.loads((tmp_path / "files" / "manifest.json").read_text())
    write_archive(
        older,
        Manifest(
            stead_version="0.0.1",
            schema_revision="0004",
            runtime="embedded",
            created_at=manifest["created_at"],
            files={name: file_entry(path) for name, path in files.items()},
        ),
        files,
    )
    target = Target(tmp_path / "target", {})
    restored = stead("restore", target, str(older))
    assert restored.returncode == 0, restored.stderr
    assert "migrated from 0004" in restored.stdout
    with stead_server(GRAPHS_CONFIG, target.data_dir) as server:
        dump = api_dump(server.url, backed_up["finished"])
    assert dump["threads"] == backed_up["before"]["threads"]


def test_scheduled_backups_keep_the_newest(
    runtime: Runtime, backed_up: dict[str, Any], tmp_path: Path
) -> None:
    if runtime.name != "embedded":
        pytest.skip("retention does not depend on the runtime")
    written = []
    for _ in range(3):
        done = stead("backup", runtime.source, "--output-dir", str(tmp_path), "--keep", "2")
        assert done.returncode == 0, done.stderr
        written.append(Path(done.stdout.strip()))
    assert sorted(tmp_path.glob("stead-backup-*.tar.gz")) == written[1:]
    assert f"removed {written[0]}, beyond the 2 kept" in done.stderr
    refused = stead("backup", runtime.source, "--keep", "2")
    assert refused.returncode == 1
    assert refused.stderr.strip() == (
        "stead: error: --keep takes a number of at least 1, and needs --output-dir"
    )


def test_an_archive_that_writes_outside_its_folder_is_refused(
    runtime: Runtime, backed_up: dict[str, Any], tmp_path: Path
) -> None:
    if runtime.name != "embedded":
        pytest.skip("reading the archive does not depend on the runtime")
    evil = tmp_path / "evil.tar.gz"
    out = io.BytesIO()
    with (
        tarfile.open(backed_up["archive"]) as source,
        tarfile.open(fileobj=out, mode="w:gz") as target,
    ):
        manifest = json.loads(source.extractfile("manifest.json").read())  # type: ignore[union-attr]
        manifest["files"]["../escaped"] = {"sha256": "0" * 64, "size": 1}
        body = json.dumps(manifest).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(body)
        target.addfile(info, io.BytesIO(body))
        escaped = tarfile.TarInfo("../escaped")
        escaped.size = 1
        target.addfile(escaped, io.BytesIO(b"x"))
    evil.write_bytes(out.getvalue())
    refused = stead("restore", Target(tmp_path / "target", {}), str(evil))
    assert refused.returncode == 1
    assert "outside" in refused.stderr.strip().splitlines()[-1], refused.stderr
    assert not (tmp_path / "escaped").exists()
    assert not (tmp_path / "target").exists()


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    with s3_server() as server:
        s3_client(server).make_bucket("nightly")
        yield server


def test_backups_go_to_s3_keep_the_newest_and_restore_from_there(
    runtime: Runtime, backed_up: dict[str, Any], s3: S3, tmp_path: Path
) -> None:
    if runtime.name != "embedded":
        pytest.skip("the S3 transport does not depend on the runtime")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = {**s3.env, "TMPDIR": str(scratch)}
    written = []
    for _ in range(3):
        done = stead(
            "backup", runtime.source, "--output-dir", "s3://nightly/stead", "--keep", "2", env=env
        )
        assert done.returncode == 0, done.stderr
        written.append(done.stdout.strip())
    assert f"removed {written[0]}, beyond the 2 kept" in done.stderr
    assert s3_keys(s3, "nightly") == [name.removeprefix("s3://nightly/") for name in written[1:]]
    assert list(scratch.iterdir()) == []  # the local copy is gone once uploaded

    target = Target(tmp_path / "fresh", {})
    restored = stead("restore", target, written[-1], env=env)
    assert restored.returncode == 0, restored.stderr
    assert f"downloading {written[-1]}" in restored.stderr
    assert list(scratch.iterdir()) == []
    with stead_server(GRAPHS_CONFIG, target.data_dir) as server:
        assert_serves_what_was_backed_up(server.url, backed_up)


@pytest.mark.parametrize(
    ("command", "location", "text"),
    [
        ("backup", "s3://no-such-bucket/stead", "NoSuchBucket"),
        ("restore", "s3://nightly/stead/stead-backup-none.tar.gz", "NoSuchKey"),
        ("restore", "s3:///key", "an S3 location is s3://<bucket>/<key>"),
    ],
)
def test_an_s3_failure_is_one_line_and_leaves_nothing(
    runtime: Runtime, s3: S3, tmp_path: Path, command: str, location: str, text: str
) -> None:
    if runtime.name != "embedded":
        pytest.skip("the S3 transport does not depend on the runtime")
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    target = Target(tmp_path / "target", {})
    where = ["--output-dir", location] if command == "backup" else [location]
    if command == "backup":
        target = runtime.source
    before = fingerprint(target)
    refused = stead(command, target, *where, env={**s3.env, "TMPDIR": str(scratch)})
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("stead: error: ") and text in last, refused.stderr
    assert list(scratch.iterdir()) == []
    assert fingerprint(target) == before


def test_an_unreachable_s3_endpoint_is_one_line(runtime: Runtime, tmp_path: Path) -> None:
    if runtime.name != "embedded":
        pytest.skip("the S3 transport does not depend on the runtime")
    env = {**S3(free_port()).env, "TMPDIR": str(tmp_path)}
    refused = stead("restore", Target(tmp_path / "target", {}), "s3://nightly/x.tar.gz", env=env)
    assert refused.returncode == 1
    last = refused.stderr.strip().splitlines()[-1]
    assert last.startswith("stead: error: downloading s3://nightly/x.tar.gz: "), refused.stderr
    assert not (tmp_path / "target").exists()


def s3_client(s3: S3) -> Minio:
    return Minio(
        s3.endpoint.removeprefix("http://"),
        access_key=s3.env["AWS_ACCESS_KEY_ID"],
        secret_key=s3.env["AWS_SECRET_ACCESS_KEY"],
        secure=False,
    )


def s3_keys(s3: S3, bucket: str) -> list[str]:
    objects = s3_client(s3).list_objects(bucket, recursive=True)
    return sorted(str(item.object_name) for item in objects)


def test_a_terminal_gets_a_progress_bar_and_a_log_gets_lines(
    runtime: Runtime, backed_up: dict[str, Any], tmp_path: Path
) -> None:
    if runtime.name != "embedded":
        pytest.skip("the bar does not depend on the runtime")
    command = [sys.executable, "-m", "stead", "backup", "--config", str(GRAPHS_CONFIG),
               "--data-dir", str(runtime.source.data_dir)]  # fmt: skip
    # `script` runs it on a terminal of its own, given a size (tqdm draws nothing 0 columns wide).
    backup = shlex.join([*command, "--output", str(tmp_path / "terminal.tar.gz")])
    on_terminal = subprocess.run(
        ["script", "--quiet", "--return", "--command", f"stty cols 120 rows 40; {backup}",
         "/dev/null"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert on_terminal.returncode == 0, on_terminal.stdout
    assert re.search(r"writing terminal\.tar\.gz: +\d+%\|", on_terminal.stdout), on_terminal.stdout
    in_a_log = stead("backup", runtime.source, "--output", str(tmp_path / "log.tar.gz"))
    assert in_a_log.returncode == 0, in_a_log.stderr
    assert "%|" not in in_a_log.stderr
    assert "writing " in in_a_log.stderr
