"""Webhooks: a finished run is POSTed to its `webhook` URL; bad URLs are refused at creation."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.conftest import GRAPHS_DIR
from tests.support.metrics import delta, scrape_url
from tests.support.receiver import WebhookReceiver
from tests.support.servers import StartedServer, stead_server

AGENT = GRAPHS_DIR / "agent.py"
TOKEN = "t0ken-from-the-environment"


def _config(tmp: Path, **sections: Any) -> Path:
    config = tmp / "langgraph.json"
    graphs = {name: f"{AGENT}:{name}" for name in ("echo", "failing", "slow")}
    config.write_text(json.dumps({"graphs": graphs, **sections}))
    return config


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as started:
        yield started


@pytest.fixture(scope="module")
def hook_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    """Loopback webhooks allowed (the default refuses them), headers from the environment, and
    one run at a time, so that a webhook holding the worker slot would show."""
    config = _config(
        tmp_path_factory.mktemp("hooks"),
        webhooks={
            "url": {"require_https": False, "disable_loopback": False},
            "headers": {
                "Authorization": "Bearer ${{ env.LG_WEBHOOK_TOKEN }}",
                "X-Static": "static value",
            },
        },
        http={"app": f"{GRAPHS_DIR / 'http_app.py'}:app"},
    )
    env = {"LG_WEBHOOK_TOKEN": TOKEN, "N_JOBS_PER_WORKER": "1"}
    with stead_server(config, env=env) as started:
        yield started


@pytest.fixture(scope="module")
def listed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    """Only listed domains; a host listed by name is trusted even on loopback."""
    config = _config(
        tmp_path_factory.mktemp("listed"),
        webhooks={
            "url": {"require_https": False, "allowed_domains": ["127.0.0.1", "*.example.org"]},
            "allowed_fields": ["run_id", "status", "values"],
        },
    )
    with stead_server(config) as started:
        yield started


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StartedServer]:
    """A `url` section that sets only ports and private IPs: https becomes required too."""
    config = _config(
        tmp_path_factory.mktemp("strict"),
        webhooks={"url": {"allowed_ports": [443, 8443], "disable_private_ips": True}},
    )
    with stead_server(config) as started:
        yield started


@pytest.fixture
async def hooks(hook_server: StartedServer) -> AsyncIterator[LangGraphClient]:
    sdk = get_client(url=hook_server.url, api_key=None)
    try:
        yield sdk
    finally:
        await sdk.http.client.aclose()


async def _thread(client: LangGraphClient) -> str:
    return str((await client.threads.create())["thread_id"])


def _timestamp(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    assert parsed.tzinfo is not None
    return parsed


async def test_finished_run_is_posted_with_its_fields_and_values(
    hooks: LangGraphClient, receiver: WebhookReceiver
) -> None:
    thread_id = await _thread(hooks)
    url = f"{receiver.url}/hooks/success?source=test"
    run = await hooks.runs.create(thread_id, "echo", input={"text": "hi"}, webhook=url)
    await hooks.runs.join(thread_id, run["run_id"])
    [delivery] = await receiver.wait_for("/hooks/success?source=test")
    body = delivery.body
    assert body["run_id"] == run["run_id"]
    assert body["thread_id"] == thread_id
    assert body["assistant_id"] == run["assistant_id"]
    assert body["status"] == "success"
    assert body["values"] == {"text": "hi"}
    assert body["kwargs"]["webhook"] == url
    assert body["kwargs"]["input"] == {"text": "hi"}
    assert body["metadata"] == run["metadata"]
    assert body["multitask_strategy"] == "enqueue"
    assert "error" not in body
    started, ended = _timestamp(body["run_started_at"]), _timestamp(body["run_ended_at"])
    assert started <= ended <= _timestamp(body["webhook_sent_at"])
    assert _timestamp(body["created_at"]) <= started


async def test_webhook_secrets_stay_out_of_the_log(
    hooks: LangGraphClient, receiver: WebhookReceiver, hook_server: StartedServer
) -> None:
    thread_id = await _thread(hooks)
    host_and_port = receiver.url.removeprefix("http://")
    url = f"http://hookuser:pw-s3cret@{host_and_port}/hooks/secret?token=q-s3cret"
    await hooks.runs.wait(thread_id, "echo", input={"text": "s"}, webhook=url)
    await receiver.wait_for("/hooks/secret?token=q-s3cret")
    log = hook_server.log_containing(f"delivered to {receiver.url}/hooks/secret")
    assert "s3cret" not in log and TOKEN not in log


async def test_headers_come_from_langgraph_json_with_env_templates(
    hooks: LangGraphClient, receiver: WebhookReceiver
) -> None:
    thread_id = await _thread(hooks)
    await hooks.runs.wait(
        thread_id, "echo", input={"text": "h"}, webhook=f"{receiver.url}/hooks/headers"
    )
    [delivery] = await receiver.wait_for("/hooks/headers")
    assert delivery.headers["authorization"] == f"Bearer {TOKEN}"
    assert delivery.headers["x-static"] == "static value"
    assert delivery.headers["content-type"] == "application/json"


async def test_failed_run_sends_its_error(
    hooks: LangGraphClient, receiver: WebhookReceiver
) -> None:
    thread_id = await _thread(hooks)
    result = await hooks.runs.wait(
        thread_id,
        "failing",
        input={"text": "b"},
        webhook=f"{receiver.url}/hooks/error",
        raise_error=False,
    )
    assert result == {"__error__": {"error": "ValueError", "message": "boom: b"}}
    [delivery] = await receiver.wait_for("/hooks/error")
    assert delivery.body["status"] == "error"
    assert delivery.body["error"] == {"error": "ValueError", "message": "boom: b"}
    assert delivery.body["values"] == {"text": "b"}


async def test_stateless_run_sends_its_values(
    hooks: LangGraphClient, receiver: WebhookReceiver
) -> None:
    result = await hooks.runs.wait(
        None, "echo", input={"text": "s"}, webhook=f"{receiver.url}/hooks/stateless"
    )
    assert result == {"text": "s"}
    [delivery] = await receiver.wait_for("/hooks/stateless")
    assert delivery.body["status"] == "success"
    assert delivery.body["values"] == {"text": "s"}
    assert delivery.body["kwargs"]["temporary"] is True


async def test_failed_delivery_is_retried_until_it_succeeds(
    hooks: LangGraphClient, receiver: WebhookReceiver, hook_server: StartedServer
) -> None:
    before = scrape_url(hook_server.url)
    thread_id = await _thread(hooks)
    run = await hooks.runs.create(
        thread_id, "echo", input={"text": "r"}, webhook=f"{receiver.url}/flaky/retry"
    )
    attempts = await receiver.wait_for("/flaky/retry", count=3)
    assert [a.status for a in attempts] == [503, 503, 200]
    assert {a.body["run_id"] for a in attempts} == {run["run_id"]}
    assert all(a.body["values"] == {"text": "r"} for a in attempts)
    # Counted as delivered once it succeeded (earlier tests' deliveries may land in the same
    # window, hence at least one); the failed tries are not failures.
    for _ in range(50):
        after = scrape_url(hook_server.url)
        if delta(before, after, "stead_webhook_deliveries_total", outcome="delivered"):
            break
        await asyncio.sleep(0.1)
    assert delta(before, after, "stead_webhook_deliveries_total", outcome="delivered") >= 1
    assert delta(before, after, "stead_webhook_deliveries_total", outcome="failed") == 0


async def test_slow_webhook_delays_neither_waiters_nor_the_worker_slot(
    hooks: LangGraphClient, receiver: WebhookReceiver
) -> None:
    """The server runs one run at a time: a webhook holding the slot would block the second run."""
    try:
        first = await asyncio.wait_for(
            hooks.runs.wait(
                await _thread(hooks),
                "echo",
                input={"text": "first"},
                webhook=f"{receiver.url}/slow/one",
            ),
            timeout=20,
        )
        assert first == {"text": "first"}
        await _until(lambda: receiver.arrived("/slow/one") == 1)
        second = await asyncio.wait_for(
            hooks.runs.wait(await _thread(hooks), "echo", input={"text": "second"}), timeout=20
        )
        assert second == {"text": "second"}
        assert receiver.deliveries("/slow/one") == []  # still held by the receiver
    finally:
        receiver.release.set()
    [delivery] = await receiver.wait_for("/slow/one")
    assert delivery.body["values"] == {"text": "first"}


async def test_relative_webhook_reaches_the_server_itself(
    hooks: LangGraphClient, hook_server: StartedServer
) -> None:
    thread_id = await _thread(hooks)
    await hooks.runs.wait(thread_id, "echo", input={"text": "self"}, webhook="/custom/inbox")
    async with httpx.AsyncClient(base_url=hook_server.url) as http:

        async def received() -> list[Any]:
            return list((await http.get("/custom/inbox")).json())

        inbox = await _until_async(received)
    assert inbox[0]["body"]["thread_id"] == thread_id
    assert inbox[0]["body"]["values"] == {"text": "self"}
    assert inbox[0]["headers"]["x-static"] == "static value"


@pytest.mark.parametrize(
    ("webhook", "detail"),
    [
        ("http://127.0.0.1:9/hook", "loopback"),
        ("http://localhost:9/hook", "loopback"),
        ("http://[::1]:9/hook", "loopback"),
        ("/relative/hook", "Loopback webhooks"),
        ("http://169.254.169.254/latest/meta-data", "metadata"),
        ("http://0.0.0.0:9/hook", "reserved"),
        ("ftp://hooks.example.com/hook", "http or https"),
        ("http://example.com/" + "x" * 5000, "too long"),
    ],
)
async def test_default_policy_refuses_loopback_and_reserved_urls(
    http: httpx.AsyncClient, webhook: str, detail: str
) -> None:
    thread_id = (await http.post("/threads", json={})).json()["thread_id"]
    body = {"assistant_id": "echo", "input": {"text": "x"}, "webhook": webhook}
    response = await http.post(f"/threads/{thread_id}/runs", json=body)
    assert response.status_code == 422
    assert detail in response.json()["detail"]
    assert (await http.get(f"/threads/{thread_id}/runs")).json() == []


@pytest.mark.parametrize(
    ("webhook", "detail"),
    [
        ("http://hooks.example.com/hook", "Webhook must use https"),
        ("https://hooks.example.com:9000/hook", "Webhook port 9000 not allowed"),
        ("https://10.1.2.3/hook", "private"),
        ("https://192.168.1.10:8443/hook", "private"),
        ("https://127.0.0.1/hook", "loopback"),
    ],
)
async def test_url_policy_refuses_http_ports_and_private_addresses(
    strict_server: StartedServer, webhook: str, detail: str
) -> None:
    async with httpx.AsyncClient(base_url=strict_server.url) as http:
        body = {"assistant_id": "echo", "input": {"text": "x"}, "webhook": webhook}
        response = await http.post("/runs", json=body)
    assert response.status_code == 422
    assert detail in response.json()["detail"]


@pytest.mark.parametrize(
    "webhook", ["http://hooks.example.net/hook", "http://example.org/hook", "http://10.0.0.1/"]
)
async def test_domain_outside_the_allowed_list_is_refused(
    listed_server: StartedServer, webhook: str
) -> None:
    async with httpx.AsyncClient(base_url=listed_server.url) as http:
        body = {"assistant_id": "echo", "input": {"text": "x"}, "webhook": webhook}
        response = await http.post("/runs", json=body)
    assert response.status_code == 422
    assert response.json()["detail"] == "Webhook domain not allowed"


async def test_allowed_fields_limit_the_body(
    listed_server: StartedServer, receiver: WebhookReceiver
) -> None:
    async with httpx.AsyncClient(base_url=listed_server.url, timeout=30) as http:
        body = {
            "assistant_id": "echo",
            "input": {"text": "f"},
            "webhook": f"{receiver.url}/hooks/fields",
        }
        run = (await http.post("/runs", json=body)).json()
    [delivery] = await receiver.wait_for("/hooks/fields")
    assert delivery.body == {"run_id": run["run_id"], "status": "success", "values": {"text": "f"}}


async def _until(condition: Any, timeout: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition never became true")
        await asyncio.sleep(0.02)


async def _until_async(read: Any, timeout: float = 20.0) -> Any:
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await read()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("nothing arrived")
        await asyncio.sleep(0.02)
    return value


def test_header_template_must_use_the_env_prefix(tmp_path: Path) -> None:
    config = _config(tmp_path, webhooks={"headers": {"X-Secret": "${{ env.HOME }}"}})
    result = subprocess.run(
        [sys.executable, "-m", "stead", "run", "--config", str(config), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "stead: error: webhooks.headers: variable 'HOME' must start with 'LG_WEBHOOK_'"
    ]
