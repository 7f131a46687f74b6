"""`stead doctor` with each fault injected into real parts: PostgreSQL down, a refused password,
a role that may not create temporary tables, a schema behind, a graph that fails to import, Redis
down or evicting, a forged, expired or soon-expiring enrollment key, an unreachable control plane,
and a full disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import psycopg
import pytest
import redis

from tests.conftest import GRAPHS_CONFIG
from tests.support.controlplane import ControlPlane, control_plane, stead
from tests.support.postgres import stead_migrate
from tests.support.servers import HOST, free_port
from tests.support.services import Postgres, Redis, postgres_server, redis_server


@pytest.fixture(scope="module")
def pg() -> Iterator[Postgres]:
    with postgres_server(databases=("migrated", "behind", "no_temporary")) as server:
        assert stead_migrate(GRAPHS_CONFIG, server.url("migrated")).returncode == 0
        assert stead_migrate(GRAPHS_CONFIG, server.url("no_temporary")).returncode == 0
        yield server


@pytest.fixture(scope="module")
def redis_service() -> Iterator[Redis]:
    with redis_server() as server:
        yield server


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("cp")) as started:
        started.api_key("acme")  # the workspace keys enroll into
        yield started


def doctor(
    env: Mapping[str, str], data_dir: Path, config: Path = GRAPHS_CONFIG, *extra: str
) -> tuple[int, dict[str, str]]:
    """Its exit status, and its lines by check ("failed   database: ..." under "database")."""
    inherited = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URI", "REDIS_URI", "LICENSE_KEY", "CONTROL_PLANE_URL")
    }
    done = subprocess.run(
        [sys.executable, "-m", "stead", "doctor", "--config", str(config),
         "--data-dir", str(data_dir), "--port", str(free_port()), *extra],
        env={**inherited, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    lines = {line.split()[1].rstrip(":"): line for line in done.stdout.splitlines()}
    assert all(line.split()[0] in ("ok", "warning", "failed") for line in lines.values()), done
    return done.returncode, lines


def healthy(pg: Postgres, redis_service: Redis) -> dict[str, str]:
    return {"DATABASE_URI": pg.url("migrated"), "REDIS_URI": redis_service.url}


def test_a_healthy_deployment_is_all_ok(pg: Postgres, redis_service: Redis, tmp_path: Path) -> None:
    code, lines = doctor(healthy(pg, redis_service), tmp_path)
    assert code == 0
    assert set(lines) == {
        "config", "graphs", "database", "schema", "connections", "temporary", "clock", "redis",
        "eviction", "enrollment", "disk", "port",
    }  # fmt: skip
    assert all(line.startswith("ok ") for line in lines.values()), lines
    assert "max_connections is 100: 2 Stead process(es)" in lines["connections"]


def test_json_output_carries_the_same_findings(
    pg: Postgres, redis_service: Redis, tmp_path: Path
) -> None:
    env = {**healthy(pg, redis_service), "DATABASE_URI": pg.url("behind")}
    done = subprocess.run(
        [sys.executable, "-m", "stead", "doctor", "--config", str(GRAPHS_CONFIG),
         "--data-dir", str(tmp_path), "--json"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 1
    findings = {item["check"]: item for item in json.loads(done.stdout)}
    assert findings["schema"]["status"] == "failed"
    assert findings["schema"]["fix"] == "run `stead migrate`"


def test_a_database_that_does_not_answer(redis_service: Redis, tmp_path: Path) -> None:
    env = {
        "DATABASE_URI": f"postgresql://postgres@{HOST}:{free_port()}/x",
        "REDIS_URI": redis_service.url,
    }
    code, lines = doctor(env, tmp_path)
    assert code == 1
    assert lines["database"].startswith("failed   database: cannot connect: ")
    assert "check that PostgreSQL runs" in lines["database"]


def test_a_refused_password(pg: Postgres, redis_service: Redis, tmp_path: Path) -> None:
    hba = pg.data_dir / "pg_hba.conf"
    rules = hba.read_text()
    hba.write_text(f"host all doctor {HOST}/32 scram-sha-256\n" + rules)
    with psycopg.connect(pg.url("migrated"), autocommit=True) as conn:
        conn.execute("CREATE ROLE doctor LOGIN PASSWORD 'right'")
        conn.execute("SELECT pg_reload_conf()")
    try:
        env = {"DATABASE_URI": f"postgresql://doctor:wrong@{HOST}:{pg.port}/migrated"}
        code, lines = doctor({**env, "REDIS_URI": redis_service.url}, tmp_path)
    finally:
        hba.write_text(rules)
        with psycopg.connect(pg.url("migrated"), autocommit=True) as conn:
            conn.execute("SELECT pg_reload_conf()")
    assert code == 1
    assert lines["database"].startswith("failed   database: the credentials are refused")
    assert "wrong" not in lines["database"]


def test_a_role_that_may_not_create_temporary_tables(
    pg: Postgres, redis_service: Redis, tmp_path: Path
) -> None:
    """Large checkpoint writes go through a temporary table: a role without PostgreSQL's
    TEMPORARY privilege fails them, and doctor says so, with the grant that fixes it."""
    with psycopg.connect(pg.url("no_temporary"), autocommit=True) as conn:
        conn.execute("REVOKE TEMPORARY ON DATABASE no_temporary FROM PUBLIC")
        conn.execute("CREATE ROLE limited LOGIN")
        conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO limited")
    env = {"DATABASE_URI": f"postgresql://limited@{HOST}:{pg.port}/no_temporary"}
    code, lines = doctor({**env, "REDIS_URI": redis_service.url}, tmp_path)
    assert code == 1
    assert lines["temporary"].startswith("failed   temporary: the role may not create temporary")
    assert 'GRANT TEMPORARY ON DATABASE "no_temporary" TO "limited"' in lines["temporary"]
    assert lines["database"].startswith("ok ") and lines["schema"].startswith("ok "), lines


def test_a_schema_behind(pg: Postgres, redis_service: Redis, tmp_path: Path) -> None:
    env = {**healthy(pg, redis_service), "DATABASE_URI": pg.url("behind")}
    code, lines = doctor(env, tmp_path)
    assert code == 1
    assert lines["schema"].startswith("failed   schema: at nothing (never migrated)")
    assert lines["database"].startswith("ok ")


def test_a_graph_that_fails_to_import(tmp_path: Path) -> None:
    project = tmp_path / "project"
    project.mkdir()
    (project / "graph.py").write_text("import no_such_module\n")
    (project / "langgraph.json").write_text('{"graphs": {"broken": "./graph.py:graph"}}')
    code, lines = doctor({}, tmp_path / "data", project / "langgraph.json")
    assert code == 1
    assert lines["config"].startswith("ok ")
    assert lines["graphs"].startswith("failed   graphs: ") and "no_such_module" in lines["graphs"]


def test_redis_down(pg: Postgres, tmp_path: Path) -> None:
    env = {"DATABASE_URI": pg.url("migrated"), "REDIS_URI": f"redis://{HOST}:{free_port()}/0"}
    code, lines = doctor(env, tmp_path)
    assert code == 1
    assert lines["redis"].startswith("failed   redis: cannot reach it")


def test_redis_evicting_any_key_is_a_warning(
    pg: Postgres, redis_service: Redis, tmp_path: Path
) -> None:
    client = redis.Redis.from_url(redis_service.url)
    client.config_set("maxmemory", "512mb")
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        code, lines = doctor(healthy(pg, redis_service), tmp_path)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.config_set("maxmemory", "0")
    assert code == 0
    assert lines["eviction"].startswith("warning  eviction: maxmemory-policy allkeys-lru")
    assert "CONFIG SET maxmemory-policy noeviction" in lines["eviction"]


def data_plane_env(plane: ControlPlane, key: str, url: str | None = None) -> dict[str, str]:
    return {
        "DEPLOYMENT_TYPE": "self_hosted_data_plane",
        "CONTROL_PLANE_URL": url or plane.url,
        "LICENSE_KEY": key,
    }


def test_a_forged_key(plane: ControlPlane, tmp_path: Path) -> None:
    forged = stead(
        "license", "issue", "--subject", "acme", "--scope", "data-plane",
        "--data-dir", str(tmp_path / "elsewhere"),
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    code, lines = doctor(data_plane_env(plane, forged), tmp_path)
    assert code == 1
    assert lines["control-plane"].startswith("ok       control-plane: ")
    assert lines["enrollment"].startswith(
        "failed   enrollment: INVALID_LICENSE: its signature is not this control plane's"
    )
    assert forged not in "".join(lines.values())


def test_an_expired_and_a_soon_expiring_key(plane: ControlPlane, tmp_path: Path) -> None:
    expired = plane.license("acme", "--expires", "2020-01-01")
    code, lines = doctor(data_plane_env(plane, expired), tmp_path)
    assert code == 1
    assert lines["enrollment"].startswith(
        "failed   enrollment: LICENSE_EXPIRED: it expired at 2020"
    )
    soon = plane.license("acme", "--expires", _days_from_now(3))
    code, lines = doctor(data_plane_env(plane, soon), tmp_path)
    assert code == 0
    assert lines["enrollment"].startswith("warning  enrollment: the key is accepted and expires")
    valid = plane.license("acme")
    code, lines = doctor(data_plane_env(plane, valid), tmp_path)
    assert code == 0
    assert lines["enrollment"] == "ok       enrollment: the key is accepted and does not expire"


def test_an_unreachable_control_plane(plane: ControlPlane, tmp_path: Path) -> None:
    env = data_plane_env(plane, plane.license("acme"), f"http://{HOST}:{free_port()}")
    code, lines = doctor(env, tmp_path)
    assert code == 1
    assert (
        lines["control-plane"].startswith("failed   control-plane: ")
        and "does not answer" in lines["control-plane"]
    )


def test_a_full_disk(tmp_path: Path) -> None:
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount_point)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        code, lines = doctor({}, mount_point / "data")
    finally:
        subprocess.run(["umount", str(mount_point)], check=True)
    assert code == 1
    assert lines["disk"].startswith("failed   disk: ") and "MiB free" in lines["disk"]


def _days_from_now(days: int) -> str:
    from datetime import UTC, datetime, timedelta

    return (datetime.now(UTC) + timedelta(days=days)).strftime("%Y-%m-%dT%H:%M:%SZ")
