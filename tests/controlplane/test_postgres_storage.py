"""The control plane on PostgreSQL (CONTROL_PLANE_DATABASE_URI): two replicas starting together
migrate once and serve the same state, a restart keeps it, and secrets stay sealed at rest."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.controlplane import new_control_plane
from tests.support.services import Postgres, postgres_server


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    with postgres_server(databases=("controlplane",)) as server:
        yield server


def test_replicas_on_one_postgres_migrate_once_and_share_state_across_restarts(
    postgres: Postgres, tmp_path: Path
) -> None:
    env = {"CONTROL_PLANE_DATABASE_URI": postgres.url("controlplane")}
    first = new_control_plane(tmp_path / "a", env)
    second = new_control_plane(tmp_path / "b", env, encryption_key=first.encryption_key)
    try:
        for replica in (first, second):
            replica.launch()
        for replica in (first, second):
            replica.wait_ready()
        # Replicas share the key pair that signs enrollment keys (a mounted Secret, in a cluster).
        for name in ("license-signing-key.pem", "license-public-key.pem"):
            shutil.copy(first.data_dir / name, second.data_dir / name)
        second.keys["acme"] = first.api_key("acme")
        with first.client() as client:
            assert client.post("/v2/listeners", json={"compute_id": "pg-host"}).status_code == 201
            created = client.post(
                "/v2/deployments",
                json={
                    "name": "on-postgres",
                    "source": "external_docker",
                    "source_revision_config": {"image_uri": "registry.example.com/agent:1"},
                    "secrets": [{"name": "OPENAI_API_KEY", "value": "sk-very-secret"}],
                },
            )
        assert created.status_code == 201, created.text
        with second.client() as client:
            seen = client.get(f"/v2/deployments/{created.json()['id']}").json()
        assert seen["name"] == "on-postgres"
        assert seen["secrets"] == [{"name": "OPENAI_API_KEY", "value": "********"}]

        first.stop()
        first.start()
        with first.client() as client:
            revisions = client.get(f"/v2/deployments/{seen['id']}/revisions").json()["resources"]
        assert [revision["status"] for revision in revisions] == ["QUEUED"]
    finally:
        first.stop()
        second.stop()

    with psycopg.connect(postgres.url("controlplane")) as conn:
        rows = conn.execute("SELECT secrets FROM deployment UNION ALL SELECT secrets FROM revision")
        sealed = [row[0] for row in rows]
        versions = conn.execute("SELECT version_num FROM control_plane_alembic_version").fetchall()
    assert len(sealed) == 2
    assert all("sk-very-secret" not in value for value in sealed)
    assert versions == [("cp0001",)]
