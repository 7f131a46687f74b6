"""The shipped Dockerfile and compose files, checked without a docker engine: hadolint, the
compose-spec schema, and compose's own reading of them (`docker compose config`)."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.docker import REPO, compose_binary

BIN = Path(sys.executable).parent
COMPOSE_DIR = REPO / "deploy" / "compose"
COMPOSE_FILES = sorted(COMPOSE_DIR.glob("docker-compose*.yml"))
DOCKERFILES = [
    REPO / "deploy" / "docker" / "Dockerfile",
    REPO / "deploy" / "docker" / "listener.Dockerfile",
    *(REPO / "tests").glob("**/Dockerfile"),
]


def hadolint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "hadolint"), "--no-color", str(path)], capture_output=True, text=True
    )


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_finds_nothing(dockerfile: Path) -> None:
    linted = hadolint(dockerfile)
    assert linted.returncode == 0, linted.stdout


def test_the_image_is_multi_stage_non_root_and_checks_its_own_health() -> None:
    text = (REPO / "deploy" / "docker" / "Dockerfile").read_text()
    assert re.search(r"^ARG BASE_IMAGE=python:3\.11-slim$", text, re.M)
    assert len(re.findall(r"^FROM \$\{BASE_IMAGE\}", text, re.M)) == 2
    final = text.rsplit("\nFROM ", 1)[1]
    assert "COPY --from=build /opt/stead /opt/stead" in final
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert re.search(r'^HEALTHCHECK .*CMD \["stead", "healthcheck"\]$', final, re.M)
    assert 'ENTRYPOINT ["stead"]' in final and 'VOLUME ["/data"]' in final


@pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_follow_the_compose_spec(compose_file: Path) -> None:
    checked = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(compose_file),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def compose_config(compose_file: Path, env_file: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            str(compose_binary()), "-f", str(compose_file), "--env-file", str(env_file),
            "config", "--format", "json",
        ],
        capture_output=True,
        text=True,
        env={"PATH": "/usr/bin:/bin"},
    )  # fmt: skip


def resolved(compose_file: Path) -> dict[str, Any]:
    done = compose_config(compose_file, COMPOSE_DIR / ".env.example")
    assert done.returncode == 0, done.stderr
    return dict(json.loads(done.stdout))


def test_the_production_stack_waits_for_its_stores_and_its_migration() -> None:
    services = resolved(COMPOSE_DIR / "docker-compose.yml")["services"]
    assert services["postgres"]["image"] == "postgres:15"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["redis"]["image"] == "redis:7-alpine"
    assert services["redis"]["healthcheck"]["test"] == ["CMD", "redis-cli", "ping"]
    assert services["migrate"]["command"] == ["migrate"]
    assert services["migrate"]["restart"] == "no"
    for name in ("api", "worker"):
        service = services[name]
        assert service["restart"] == "unless-stopped"
        assert service["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert service["depends_on"]["postgres"]["condition"] == "service_healthy"
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        env = service["environment"]
        assert env["POSTGRES_URL"].startswith("postgresql://stead:change-me@postgres:5432/")
        assert env["REDIS_URL"] == "redis://redis:6379"
        # docker must wait longer than Stead hands its runs back to the queue.
        assert _seconds(service["stop_grace_period"]) > float(
            env["BG_JOB_SHUTDOWN_GRACE_PERIOD_SECS"]
        )
    assert services["api"]["environment"]["N_JOBS_PER_WORKER"] == "0"
    assert services["worker"]["command"][0] == "worker"


def test_the_embedded_file_keeps_its_data_in_a_named_volume() -> None:
    config = resolved(COMPOSE_DIR / "docker-compose.embedded.yml")
    (service,) = config["services"].values()
    assert [v["target"] for v in service["volumes"] if v["type"] == "volume"] == ["/data"]
    assert "stead_data" in config["volumes"]


def test_without_a_password_compose_refuses_to_start(tmp_path: Path) -> None:
    empty = tmp_path / ".env"
    empty.write_text("")
    done = compose_config(COMPOSE_DIR / "docker-compose.yml", empty)
    assert done.returncode != 0
    assert "set POSTGRES_PASSWORD in .env" in done.stderr


@pytest.mark.parametrize("compose_file", COMPOSE_FILES, ids=lambda p: p.name)
def test_no_secret_is_written_in_a_compose_file(compose_file: Path) -> None:
    """Every value of a password, key, token or secret comes from .env (`${...}`)."""
    secret = re.compile(r"^\s*-?\s*\w*(PASSWORD|KEY|TOKEN|SECRET)\w*\s*[:=]\s*(.+)$", re.M)
    for match in secret.finditer(compose_file.read_text()):
        assert match.group(2).startswith("${"), match.group(0)


def _seconds(duration: str | int) -> float:
    """Compose gives durations as Go durations ("3m10s") or as nanoseconds."""
    if isinstance(duration, int):
        return duration / 1e9
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(float(n) * units[u] for n, u in re.findall(r"([\d.]+)([hms])", duration))
