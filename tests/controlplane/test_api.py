"""The control plane's REST API as a user's script meets it, on one `stead control-plane`: tenant
isolation over every endpoint, the rules of creating and changing deployments, paging, bulk
delete, uploads, log paging, what listeners may ask, and keys and secrets at rest."""

from __future__ import annotations

import io
import os
import secrets
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet

from tests.support.controlplane import ControlPlane, control_plane, stead

PREFIXES = ("", "/api-host")


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with control_plane(tmp_path_factory.mktemp("cp")) as started:
        started.create_listener("acme-host", tenant="acme")
        started.create_listener("rival-host", tenant="rival")
        yield started


@pytest.fixture
def acme(plane: ControlPlane) -> Iterator[httpx.Client]:
    with plane.client("acme") as client:
        yield client


@pytest.fixture
def rival(plane: ControlPlane) -> Iterator[httpx.Client]:
    with plane.client("rival") as client:
        yield client


def tarball() -> bytes:
    """A gzip-compressed tarball holding a langgraph.json, as `langgraph deploy` uploads."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        data = b'{"graphs": {"agent": "./agent.py:graph"}}'
        info = tarfile.TarInfo("langgraph.json")
        info.size = len(data)
        archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def upload(client: httpx.Client, deployment_id: str, body: bytes | None = None) -> str:
    """Upload a source tarball for the deployment; its object_path."""
    given = client.post(f"/v2/deployments/{deployment_id}/upload-url", json={})
    assert given.status_code == 200, given.text
    put = httpx.put(given.json()["upload_url"], content=tarball() if body is None else body)
    assert put.status_code == 200, put.text
    return str(given.json()["object_path"])


def source_deployment(client: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    """An internal_source deployment with one revision queued."""
    created = client.post(
        "/v2/deployments", json={"name": name, "source": "internal_source", **extra}
    )
    assert created.status_code == 201, created.text
    deployment_id = created.json()["id"]
    revised = client.patch(
        f"/v2/deployments/{deployment_id}",
        json={
            "source_revision_config": {
                "source_tarball_path": upload(client, deployment_id),
                "langgraph_config_path": "langgraph.json",
            }
        },
    )
    assert revised.status_code == 200, revised.text
    return dict(revised.json())


def image_deployment(client: httpx.Client, name: str, **extra: Any) -> dict[str, Any]:
    body = {
        "name": name,
        "source": "external_docker",
        "source_revision_config": {"image_uri": "registry.example/agent:1"},
        **extra,
    }
    created = client.post("/v2/deployments", json=body)
    assert created.status_code == 201, created.text
    return dict(created.json())


def listener_of(client: httpx.Client, compute_id: str) -> dict[str, Any]:
    listeners = client.get("/v2/listeners").json()["resources"]
    return next(item for item in listeners if item["compute_id"] == compute_id)


def data_plane(plane: ControlPlane, key: str) -> httpx.Client:
    """What a listener holding enrollment key `key` sends."""
    return httpx.Client(base_url=plane.url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def revision_ids(client: httpx.Client, deployment_id: str, *params: str) -> list[str]:
    query = "&".join(params)
    listed = client.get(f"/v2/deployments/{deployment_id}/revisions?{query}")
    assert listed.status_code == 200, listed.text
    return [revision["id"] for revision in listed.json()["resources"]]


# Tenant isolation


@pytest.fixture(scope="module")
def acme_objects(plane: ControlPlane) -> dict[str, Any]:
    """A deployment of acme's with a revision, a secret and log lines, and acme's listener."""
    with plane.client("acme") as client:
        deployment = source_deployment(
            client, "isolated", secrets=[{"name": "OPENAI_API_KEY", "value": "sk-isolated"}]
        )
        listener = listener_of(client, "acme-host")
    revision_id = deployment["latest_revision_id"]
    with data_plane(plane, plane.license("acme")) as listener_client:
        logged = listener_client.post(
            f"/v1/data-plane/listeners/{listener['id']}/revisions/{revision_id}/logs",
            json={"type": "build", "lines": [{"message": "step 1/3"}]},
        )
    assert logged.status_code == 204, logged.text
    return {"deployment": deployment["id"], "revision": revision_id, "listener": listener["id"]}


def acme_snapshot(client: httpx.Client, ids: dict[str, Any]) -> list[Any]:
    deployment, revision = ids["deployment"], ids["revision"]
    paths = [
        f"/v2/deployments/{deployment}",
        f"/v2/deployments/{deployment}/revisions",
        f"/v2/deployments/{deployment}/revisions/{revision}",
        f"/v2/deployments/{deployment}/revisions/{revision}/logs?type=build",
        f"/v2/listeners/{ids['listener']}",
    ]
    answers = [client.get(path) for path in paths]
    assert all(answer.status_code == 200 for answer in answers)
    listener = answers[-1].json()
    return [answer.json() for answer in answers[:-1]] + [
        {k: v for k, v in listener.items() if k != "status"}
    ]


ISOLATED_CALLS = [
    ("GET", "/v2/deployments/{deployment}", None),
    ("PATCH", "/v2/deployments/{deployment}", {"secrets": [{"name": "X", "value": "stolen"}]}),
    ("DELETE", "/v2/deployments/{deployment}", None),
    ("POST", "/v2/deployments/{deployment}/upload-url", {}),
    ("POST", "/v2/deployments/{deployment}/push-token", None),
    ("GET", "/v2/deployments/{deployment}/revisions", None),
    ("POST", "/v2/deployments/{deployment}/revisions", {"secrets": []}),
    ("GET", "/v2/deployments/{deployment}/revisions/{revision}", None),
    ("POST", "/v2/deployments/{deployment}/revisions/{revision}/redeploy", None),
    ("GET", "/v2/deployments/{deployment}/revisions/{revision}/logs?type=build", None),
    ("GET", "/v2/deployments/{deployment}/revisions/{revision}/logs?type=deploy", None),
    ("POST", "/v1/projects/{deployment}/revisions/{revision}/build_logs", {}),
    ("POST", "/v1/projects/{deployment}/revisions/{revision}/deploy_logs", {}),
    ("POST", "/v1/projects/{deployment}/deploy_logs", {}),
    ("GET", "/v2/deployments/{own_deployment}/revisions/{revision}", None),
    ("GET", "/v2/listeners/{listener}", None),
    ("PATCH", "/v2/listeners/{listener}", {"version": "0.0.0-stolen"}),
    ("DELETE", "/v2/listeners/{listener}", None),
]


@pytest.mark.parametrize("prefix", PREFIXES)
def test_another_tenant_gets_404_on_every_endpoint_and_changes_nothing(
    plane: ControlPlane, acme_objects: dict[str, Any], prefix: str
) -> None:
    with plane.client("acme", prefix) as acme, plane.client("rival", prefix) as rival:
        own = image_deployment(rival, f"rival-own{prefix.replace('/', '-')}")
        ids = {**acme_objects, "own_deployment": own["id"]}
        before = acme_snapshot(acme, acme_objects)
        for method, template, body in ISOLATED_CALLS:
            answer = rival.request(method, template.format(**ids), json=body)
            assert answer.status_code == 404, (method, template, answer.text)
            assert "not found" in answer.json()["detail"], (method, template, answer.text)
        assert acme_snapshot(acme, acme_objects) == before


@pytest.mark.parametrize("prefix", PREFIXES)
def test_lists_and_filters_never_show_another_tenants_objects(
    plane: ControlPlane, acme_objects: dict[str, Any], prefix: str
) -> None:
    with plane.client("rival", prefix) as rival:
        listed = rival.get("/v2/deployments?limit=100").json()["resources"]
        assert acme_objects["deployment"] not in {item["id"] for item in listed}
        by_id = rival.get(f"/v2/deployments?deployment_ids={acme_objects['deployment']}")
        assert by_id.json()["resources"] == []
        named = rival.get("/v2/deployments?name=isolated").json()["resources"]
        assert acme_objects["deployment"] not in {item["id"] for item in named}
        listeners = rival.get("/v2/listeners?limit=100").json()["resources"]
        assert acme_objects["listener"] not in {item["id"] for item in listeners}


def test_bulk_delete_of_another_tenants_deployment_fails_for_it_alone(
    plane: ControlPlane, acme_objects: dict[str, Any], rival: httpx.Client, acme: httpx.Client
) -> None:
    own = image_deployment(rival, "rival-bulk")
    answer = rival.delete(
        f"/v2/deployments?deployment_ids={own['id']},{acme_objects['deployment']}"
    )
    assert answer.status_code == 207, answer.text
    assert answer.json()["deleted_ids"] == [own["id"]]
    assert [item["id"] for item in answer.json()["failed"]] == [acme_objects["deployment"]]
    assert acme.get(f"/v2/deployments/{acme_objects['deployment']}").json()["status"] in (
        "READY",
        "UNKNOWN",
    )


def test_a_deployment_cannot_be_placed_on_another_tenants_listener(
    acme_objects: dict[str, Any], rival: httpx.Client
) -> None:
    answer = rival.post(
        "/v2/deployments",
        json={
            "name": "squatter",
            "source": "external_docker",
            "source_config": {"listener_id": acme_objects["listener"]},
        },
    )
    assert answer.status_code == 404, answer.text
    assert rival.get("/v2/deployments?name=squatter").json()["resources"] == []


def test_names_are_per_tenant(acme_objects: dict[str, Any], rival: httpx.Client) -> None:
    created = rival.post("/v2/deployments", json={"name": "isolated", "source": "internal_source"})
    assert created.status_code == 201, created.text
    assert created.json()["id"] != acme_objects["deployment"]


def test_a_listener_key_of_another_workspace_reads_nothing(
    plane: ControlPlane, acme_objects: dict[str, Any]
) -> None:
    listener = acme_objects["listener"]
    with data_plane(plane, plane.license("rival")) as other:
        for method, path in [
            ("GET", f"/v1/data-plane/listeners/{listener}/deployments"),
            (
                "GET",
                f"/v1/data-plane/listeners/{listener}/revisions/{acme_objects['revision']}/source",
            ),
            ("POST", f"/v1/data-plane/listeners/{listener}/heartbeat"),
        ]:
            answer = other.request(method, path, json={})
            assert answer.status_code == 403, (path, answer.text)
            assert answer.json()["detail"].startswith("INVALID_LICENSE: it enrolls into")


def test_a_listener_reads_only_what_is_placed_on_it_with_secrets_decrypted(
    plane: ControlPlane, acme_objects: dict[str, Any], rival: httpx.Client
) -> None:
    rival_listener = listener_of(rival, "rival-host")["id"]
    with data_plane(plane, plane.license("rival")) as listener:
        placed = listener.get(f"/v1/data-plane/listeners/{rival_listener}/deployments")
        assert acme_objects["deployment"] not in {d["id"] for d in placed.json()["deployments"]}
        foreign = listener.get(
            f"/v1/data-plane/listeners/{rival_listener}/revisions/{acme_objects['revision']}/source"
        )
        assert foreign.status_code == 404
    with data_plane(plane, plane.license("acme")) as listener:
        placed = listener.get(f"/v1/data-plane/listeners/{acme_objects['listener']}/deployments")
        mine = next(
            d for d in placed.json()["deployments"] if d["id"] == acme_objects["deployment"]
        )
        assert mine["latest_revision"]["env"] == {"OPENAI_API_KEY": "sk-isolated"}


# Keys and tenant headers


def test_x_tenant_id_must_name_the_keys_workspace(
    plane: ControlPlane, acme: httpx.Client, rival: httpx.Client
) -> None:
    assert acme.get("/v2/deployments", headers={"X-Tenant-Id": "acme"}).status_code == 200
    tenant_id = listener_of(acme, "acme-host")["tenant_id"]
    assert acme.get("/v2/deployments", headers={"X-Tenant-Id": tenant_id}).status_code == 200
    refused = acme.get("/v2/deployments", headers={"X-Tenant-Id": "rival"})
    assert refused.status_code == 403
    assert "X-Tenant-Id" in refused.json()["detail"]
    assert httpx.get(f"{plane.url}/v2/deployments").status_code == 401
    wrong = httpx.get(f"{plane.url}/v2/deployments", headers={"X-Api-Key": "steadcp_nope"})
    assert wrong.status_code == 401
    assert wrong.json() == {"detail": "Invalid API key."}


def test_a_revoked_key_is_refused_and_list_shows_no_secret(plane: ControlPlane) -> None:
    data_dir = str(plane.data_dir)
    created = stead(
        "control-plane", "apikey", "create", "--tenant", "acme", "--name", "ci",
        "--data-dir", data_dir,
    )  # fmt: skip
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip().splitlines()[-1]
    headers = {"X-Api-Key": key}
    assert httpx.get(f"{plane.url}/v2/deployments", headers=headers).status_code == 200
    listed = stead("control-plane", "apikey", "list", "--data-dir", data_dir)
    assert key not in listed.stdout
    line = next(line for line in listed.stdout.splitlines() if "  ci  " in line)
    assert "acme" in line and line.endswith("active")
    revoked = stead("control-plane", "apikey", "revoke", line.split()[0], "--data-dir", data_dir)
    assert revoked.returncode == 0, revoked.stderr
    assert httpx.get(f"{plane.url}/v2/deployments", headers=headers).status_code == 401
    again = stead("control-plane", "apikey", "revoke", line.split()[0], "--data-dir", data_dir)
    assert again.returncode != 0
    assert again.stderr.count("\n") == 1, again.stderr


# Creating and changing deployments


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"name": "gh", "source": "github"}, 400, "GitHub is not supported"),
        ({"name": "reg", "source": "internal_docker"}, 400, "no managed registry"),
        (
            {
                "name": "img",
                "source": "external_docker",
                "source_revision_config": {
                    "image_uri": "x:1",
                    "langgraph_config_path": "langgraph.json",
                },
            },
            400,
            "langgraph_config_path must be null",
        ),
        (
            {
                "name": "src",
                "source": "internal_source",
                "source_revision_config": {
                    "source_tarball_path": "never/uploaded.tar.gz",
                    "langgraph_config_path": "langgraph.json",
                },
            },
            400,
            "source_tarball_path must be the object_path",
        ),
        (
            {
                "name": "url",
                "source": "internal_source",
                "source_config": {"custom_url": "http://127.0.0.1:1"},
            },
            400,
            "custom_url can be set only",
        ),
        (
            {
                "name": "res",
                "source": "internal_source",
                "secrets": [{"name": "DATABASE_URI", "value": "x"}],
            },
            400,
            "DATABASE_URI is reserved",
        ),
        (
            {
                "name": "dup",
                "source": "internal_source",
                "secrets": [{"name": "A", "value": "1"}, {"name": "A", "value": "2"}],
            },
            400,
            "given twice",
        ),
        ({"source": "internal_source"}, 422, None),
        ({"name": "bad", "source": "ftp"}, 422, None),
    ],
)
def test_a_refused_create_says_why_and_leaves_nothing(
    acme: httpx.Client, body: dict[str, Any], status: int, text: str | None
) -> None:
    before = acme.get("/v2/deployments?limit=100").json()["resources"]
    answer = acme.post("/v2/deployments", json=body)
    assert answer.status_code == status, answer.text
    detail = answer.json()["detail"]
    if text is None:
        assert isinstance(detail, list) and detail[0]["loc"][0] == "body"
    else:
        assert text in detail
    assert acme.get("/v2/deployments?limit=100").json()["resources"] == before


def test_a_duplicate_name_is_a_409(acme: httpx.Client) -> None:
    image_deployment(acme, "twice")
    again = acme.post("/v2/deployments", json={"name": "twice", "source": "external_docker"})
    assert again.status_code == 409
    assert again.json() == {"detail": "Deployment with name twice already exists."}


def test_placement_needs_a_listener_and_a_name_among_several(plane: ControlPlane) -> None:
    with plane.client("lonely") as lonely:
        answer = lonely.post("/v2/deployments", json={"name": "a", "source": "external_docker"})
        assert answer.status_code == 400
        assert "No listener is registered" in answer.json()["detail"]
    plane.create_listener("cluster-a", tenant="multi")
    plane.create_listener("cluster-b", tenant="multi")
    with plane.client("multi") as multi:
        answer = multi.post("/v2/deployments", json={"name": "a", "source": "external_docker"})
        assert answer.status_code == 400
        assert "'listener_id' is required" in answer.json()["detail"]
        second = listener_of(multi, "cluster-b")["id"]
        placed = image_deployment(multi, "b", source_config={"listener_id": second})
        assert placed["source_config"]["listener_id"] == second


def test_secrets_are_masked_kept_and_an_allowed_reserved_name_is_taken(
    acme: httpx.Client,
) -> None:
    created = image_deployment(
        acme,
        "with-secrets",
        secrets=[
            {"name": "POSTGRES_URI_CUSTOM", "value": "postgresql://u:p@127.0.0.1/db"},
            {"name": "TOKEN", "value": "t0k3n"},
        ],
    )
    expected = [
        {"name": "POSTGRES_URI_CUSTOM", "value": "********"},
        {"name": "TOKEN", "value": "********"},
    ]
    assert created["secrets"] == expected
    assert acme.get(f"/v2/deployments/{created['id']}").json()["secrets"] == expected


def test_patch_makes_a_revision_exactly_when_what_runs_changes(acme: httpx.Client) -> None:
    deployment = image_deployment(acme, "patched")
    path = f"/v2/deployments/{deployment['id']}"
    first = deployment["latest_revision_id"]
    assert revision_ids(acme, deployment["id"]) == [first]

    moved = acme.patch(path, json={"source_config": {"custom_url": "http://127.0.0.1:9"}})
    assert moved.status_code == 200, moved.text
    assert moved.json()["latest_revision_id"] == first
    assert moved.json()["source_config"]["custom_url"] == "http://127.0.0.1:9"

    for change in (
        {"source_revision_config": {"image_uri": "registry.example/agent:2"}},
        {"secrets": [{"name": "TOKEN", "value": "new"}]},
        {"source_config": {"resource_spec": {"min_scale": 2}}},
    ):
        answer = acme.patch(path, json=change)
        assert answer.status_code == 200, answer.text
        assert answer.json()["latest_revision_id"] != first
        first = answer.json()["latest_revision_id"]
    revisions = acme.get(f"{path}/revisions").json()["resources"]
    assert len(revisions) == 4
    newest = revisions[0]
    assert newest["id"] == first and newest["status"] == "QUEUED"
    assert newest["source_revision_config"]["image_uri"] == "registry.example/agent:2"
    assert {r["status"] for r in revisions[1:]} == {"SKIPPED"}
    assert revision_ids(acme, deployment["id"], "status=SKIPPED") == [
        r["id"] for r in revisions[1:]
    ]


@pytest.mark.parametrize(
    ("change", "text"),
    [
        ({"source_config": {"listener_id": "elsewhere"}}, "listener_id cannot be changed"),
        ({"source_config": {"deployment_type": "prod"}}, "deployment_type cannot be changed"),
        ({"revision_source": "internal_source"}, "cannot change"),
        ({"revision_source": "github"}, "GitHub is not supported"),
        ({"secrets": [{"name": "PORT", "value": "1"}]}, "PORT is reserved"),
    ],
)
def test_a_refused_patch_changes_nothing(
    acme: httpx.Client, change: dict[str, Any], text: str
) -> None:
    deployment = image_deployment(acme, f"immutable-{secrets.token_hex(3)}")
    path = f"/v2/deployments/{deployment['id']}"
    before = acme.get(path).json()
    answer = acme.patch(path, json=change)
    assert answer.status_code == 400, answer.text
    assert text in answer.json()["detail"]
    assert acme.get(path).json() == before
    assert revision_ids(acme, deployment["id"]) == [deployment["latest_revision_id"]]


def test_redeploy_copies_an_older_revision(acme: httpx.Client) -> None:
    deployment = image_deployment(acme, "rollback")
    path = f"/v2/deployments/{deployment['id']}"
    first = deployment["latest_revision_id"]
    acme.patch(path, json={"source_revision_config": {"image_uri": "registry.example/agent:2"}})
    rolled = acme.post(f"{path}/revisions/{first}/redeploy")
    assert rolled.status_code == 200, rolled.text
    newest = acme.get(f"{path}/revisions/{rolled.json()['latest_revision_id']}").json()
    assert newest["id"] != first
    assert len(revision_ids(acme, deployment["id"])) == 3
    assert newest["source_revision_config"]["image_uri"] == "registry.example/agent:1"
    unknown = acme.post(f"{path}/revisions/no-such-revision/redeploy")
    assert unknown.status_code == 404


def test_delete_without_a_revision_is_immediate_and_with_one_awaits_the_listener(
    acme: httpx.Client,
) -> None:
    empty = acme.post("/v2/deployments", json={"name": "empty", "source": "external_docker"})
    assert empty.json()["latest_revision_id"] is None
    assert acme.delete(f"/v2/deployments/{empty.json()['id']}").status_code == 204
    assert acme.get(f"/v2/deployments/{empty.json()['id']}").status_code == 404

    running = image_deployment(acme, "awaiting")
    assert acme.delete(f"/v2/deployments/{running['id']}").status_code == 204
    assert acme.get(f"/v2/deployments/{running['id']}").json()["status"] == "AWAITING_DELETE"


# Lists, filters, bulk delete


@pytest.mark.parametrize("prefix", PREFIXES)
def test_list_pages_newest_first_and_filters(plane: ControlPlane, prefix: str) -> None:
    tenant = f"pager{prefix.replace('/', '-')}"
    plane.create_listener("pager-host", tenant=tenant)
    with plane.client(tenant, prefix) as client:
        made = [image_deployment(client, f"agent-{n}")["id"] for n in range(5)]
        made.append(image_deployment(client, "other")["id"])
        seen: list[str] = []
        offset = 0
        while True:
            page = client.get(f"/v2/deployments?limit=2&offset={offset}").json()
            if not page["resources"]:
                break
            seen += [item["id"] for item in page["resources"]]
            offset = page["offset"]
        assert seen == made[::-1]
        named = client.get("/v2/deployments?name_contains=agent-&limit=3&offset=1").json()
        assert [item["id"] for item in named["resources"]] == made[3::-1][:3]
        chosen = client.get(f"/v2/deployments?deployment_ids={made[0]},{made[5]}").json()
        assert {item["id"] for item in chosen["resources"]} == {made[0], made[5]}
        unknown = client.get("/v2/deployments?status=UNKNOWN&limit=100").json()
        assert len(unknown["resources"]) == 6
        assert client.get("/v2/deployments?status=READY").json()["resources"] == []
        bad = client.get("/v2/deployments?status=SLEEPING")
        assert bad.status_code == 400 and "status must be among" in bad.json()["detail"]
        assert client.get("/v2/deployments?limit=0").status_code == 422


def test_bulk_delete_all_or_partial(plane: ControlPlane) -> None:
    plane.create_listener("bulk-host", tenant="bulk")
    with plane.client("bulk") as client:
        ids = [
            client.post(
                "/v2/deployments", json={"name": f"b{n}", "source": "external_docker"}
            ).json()["id"]
            for n in range(3)
        ]
        done = client.delete(f"/v2/deployments?deployment_ids={ids[0]},{ids[1]}")
        assert done.status_code == 200, done.text
        assert done.json() == {"deleted_ids": ids[:2], "failed": []}
        partial = client.delete(f"/v2/deployments?deployment_ids={ids[2]},gone")
        assert partial.status_code == 207
        assert partial.json()["deleted_ids"] == [ids[2]]
        assert partial.json()["failed"] == [
            {"id": "gone", "detail": "Deployment ID gone not found."}
        ]
        assert client.get("/v2/deployments").json()["resources"] == []
        too_many = ",".join(f"d{n}" for n in range(101))
        assert client.delete(f"/v2/deployments?deployment_ids={too_many}").status_code == 400


# Uploads


def test_upload_urls_take_one_gzip_tarball_each(acme: httpx.Client) -> None:
    created = acme.post("/v2/deployments", json={"name": "uploads", "source": "internal_source"})
    deployment_id = created.json()["id"]
    given = acme.post(f"/v2/deployments/{deployment_id}/upload-url", json={}).json()
    assert given["upload_headers"] == {"X-Goog-Content-Length-Range": "0,209715200"}
    assert given["upload_url"].startswith(str(acme.base_url).rstrip("/") + "/v2/uploads/")

    not_gzip = httpx.put(given["upload_url"], content=b"plain text, not a tarball")
    assert not_gzip.status_code == 400
    assert "gzip-compressed tarball" in not_gzip.json()["detail"]
    empty = httpx.put(given["upload_url"], content=b"")
    assert empty.status_code == 400
    revision = {
        "source_revision_config": {
            "source_tarball_path": given["object_path"],
            "langgraph_config_path": "langgraph.json",
        }
    }
    refused = acme.patch(f"/v2/deployments/{deployment_id}", json=revision)
    assert refused.status_code == 400

    assert httpx.put(given["upload_url"], content=tarball()).status_code == 200
    reused = httpx.put(given["upload_url"], content=tarball())
    assert reused.status_code == 409
    assert httpx.put(given["upload_url"] + "x", content=tarball()).status_code == 404
    accepted = acme.patch(f"/v2/deployments/{deployment_id}", json=revision)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["latest_revision_id"]


# Logs


@pytest.fixture(scope="module")
def logged_revision(plane: ControlPlane) -> dict[str, Any]:
    """A revision whose listener sent seven build lines and one deploy line."""
    with plane.client("acme") as client:
        deployment = source_deployment(client, "logged")
        listener = listener_of(client, "acme-host")["id"]
    revision = deployment["latest_revision_id"]
    base = f"/v1/data-plane/listeners/{listener}/revisions/{revision}/logs"
    with data_plane(plane, plane.license("acme")) as sender:
        lines = [
            {"message": f"build line {n}", "level": "ERROR" if n == 4 else "INFO"} for n in range(7)
        ]
        assert sender.post(base, json={"type": "build", "lines": lines}).status_code == 204
        deploy = [{"message": "serving on 127.0.0.1"}]
        assert sender.post(base, json={"type": "deploy", "lines": deploy}).status_code == 204
    return {"deployment": deployment["id"], "revision": revision}


def test_logs_page_forward_and_backward(
    acme: httpx.Client, logged_revision: dict[str, Any]
) -> None:
    path = "/v2/deployments/{deployment}/revisions/{revision}/logs".format(**logged_revision)
    messages: list[str] = []
    cursor = ""
    while True:
        page = acme.get(f"{path}?type=build&limit=3&offset={cursor}").json()
        messages += [line["message"] for line in page["logs"]]
        if page["next_offset"] is None:
            break
        cursor = page["next_offset"]
    assert messages == [f"build line {n}" for n in range(7)]
    newest = acme.get(f"{path}?type=build&order=desc&limit=2").json()["logs"]
    assert [line["message"] for line in newest] == ["build line 6", "build line 5"]
    errors = acme.get(f"{path}?type=build&level=ERROR").json()["logs"]
    assert [line["message"] for line in errors] == ["build line 4"]
    found = acme.get(f"{path}?type=build&query=line 2").json()["logs"]
    assert [line["message"] for line in found] == ["build line 2"]
    deploy = acme.get(f"{path}?type=deploy").json()
    assert [line["message"] for line in deploy["logs"]] == ["serving on 127.0.0.1"]
    assert acme.get(f"{path}?type=build&offset=abc").status_code == 400
    assert acme.get(path).status_code == 422


def test_the_legacy_log_readers_page_the_same_lines(
    acme: httpx.Client, logged_revision: dict[str, Any]
) -> None:
    path = "/v1/projects/{deployment}/revisions/{revision}/build_logs".format(**logged_revision)
    first = acme.post(path, json={"limit": 4}).json()
    rest = acme.post(path, json={"limit": 4, "offset": first["next_offset"]}).json()
    assert [line["message"] for line in first["logs"] + rest["logs"]] == [
        f"build line {n}" for n in range(7)
    ]
    assert rest["next_offset"] is None
    latest = acme.post(
        "/v1/projects/{deployment}/deploy_logs".format(**logged_revision), json={}
    ).json()
    assert [line["message"] for line in latest["logs"]] == ["serving on 127.0.0.1"]


# Listeners


def test_listener_rules(acme: httpx.Client, acme_objects: dict[str, Any]) -> None:
    duplicate = acme.post("/v2/listeners", json={"compute_id": "acme-host"})
    assert duplicate.status_code == 409
    assert "compute_id acme-host already exists" in duplicate.json()["detail"]
    bad_type = acme.post("/v2/listeners", json={"compute_id": "x", "compute_type": "mainframe"})
    assert bad_type.status_code == 400
    busy = acme.delete(f"/v2/listeners/{acme_objects['listener']}")
    assert busy.status_code == 409 and "delete them first" in busy.json()["detail"]
    spare = acme.post(
        "/v2/listeners",
        json={"compute_id": "spare", "compute_config": {"k8s_namespaces": ["agents"]}},
    )
    assert spare.status_code == 201
    assert spare.json()["compute_type"] == "k8s"
    assert spare.json()["compute_config"] == {"k8s_namespaces": ["agents"]}
    path = f"/v2/listeners/{spare.json()['id']}"
    assert acme.patch(path, json={"version": "1.2.3"}).json()["version"] == "1.2.3"
    assert acme.delete(path).status_code == 204
    assert acme.get(path).status_code == 404


# Enrollment keys on the data-plane API


def test_data_plane_keys_are_refused_with_their_code(
    plane: ControlPlane, acme_objects: dict[str, Any], tmp_path: Path
) -> None:
    path = f"/v1/data-plane/listeners/{acme_objects['listener']}/deployments"
    forged = stead(
        "license", "issue", "--subject", "acme", "--scope", "data-plane",
        "--data-dir", str(tmp_path / "another-control-plane"),
    ).stdout.strip().splitlines()[-1]  # fmt: skip
    cases = [
        (forged, 403, "INVALID_LICENSE: its signature is not this control plane's"),
        (plane.license("acme", "--expires", "2020-01-01"), 401, "LICENSE_EXPIRED"),
        ("not-a-key", 403, "INVALID_LICENSE"),
    ]
    for key, status, text in cases:
        with data_plane(plane, key) as client:
            answer = client.get(path)
        assert answer.status_code == status, answer.text
        assert answer.json()["detail"].startswith(text)
        assert key not in answer.text
    assert httpx.get(f"{plane.url}{path}").status_code == 403
    report = {
        "name": "x",
        "url": "http://127.0.0.1:1",
        "version": "1",
        "replica": "r",
        "health": {},
    }
    with data_plane(plane, forged) as client:
        assert client.post("/v1/data-plane/servers/heartbeat", json=report).status_code == 403


# Secrets at rest and start-up


def test_secret_values_never_reach_the_database_file(plane: ControlPlane) -> None:
    value = "plaintext-" + secrets.token_hex(16)
    with plane.client("acme") as client:
        image_deployment(client, "at-rest", secrets=[{"name": "SECRET", "value": value}])
    stored = b"".join(path.read_bytes() for path in plane.data_dir.glob("control-plane.sqlite*"))
    assert b"at-rest" in stored
    assert value.encode() not in stored


@pytest.mark.parametrize(
    ("key", "text"),
    [
        (None, "STEAD_ENCRYPTION_KEY is not set"),
        ("too-short", "STEAD_ENCRYPTION_KEY is not a Fernet key"),
    ],
)
def test_the_control_plane_will_not_start_without_a_usable_encryption_key(
    tmp_path: Path, key: str | None, text: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "STEAD_ENCRYPTION_KEY"}
    if key is not None:
        env["STEAD_ENCRYPTION_KEY"] = key
    done = subprocess.run(
        [sys.executable, "-m", "stead", "control-plane", "--data-dir", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert text in done.stderr
    assert not (tmp_path / "control-plane.sqlite").exists()


def test_the_control_plane_will_not_start_with_a_key_other_than_its_secrets(
    tmp_path: Path,
) -> None:
    with control_plane(tmp_path) as plane:
        plane.create_listener("host")
        with plane.client() as client:
            image_deployment(client, "sealed", secrets=[{"name": "A", "value": "1"}])
    plane.encryption_key = Fernet.generate_key().decode()
    plane.launch()
    assert plane.process is not None
    assert plane.process.wait(60) == 1
    output = plane.log_path.read_text().strip().splitlines()
    assert output[-1].startswith(
        "stead: error: stored secrets do not decrypt with this STEAD_ENCRYPTION_KEY"
    )
