"""The example project the README starts users on works as the README says."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from langgraph_sdk import get_client
from langgraph_sdk.client import LangGraphClient

from tests.support.servers import stead_server

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "langgraph.json"


@pytest.fixture(scope="module")
async def example_client() -> AsyncIterator[LangGraphClient]:
    with stead_server(EXAMPLES) as server:
        sdk = get_client(url=server.url, api_key=None)
        yield sdk
        await sdk.http.client.aclose()


async def test_chat_streams_the_reply(example_client: LangGraphClient) -> None:
    thread = await example_client.threads.create()
    tokens = []
    async for part in example_client.runs.stream(
        thread["thread_id"],
        "chat",
        input={"messages": [{"role": "user", "content": "hello"}]},
        stream_mode="messages-tuple",
    ):
        if part.event == "messages":
            tokens.append(part.data[0]["content"])
    assert "".join(tokens) == "You said: hello"
    state = await example_client.threads.get_state(thread["thread_id"])
    assert [m["content"] for m in state["values"]["messages"]] == ["hello", "You said: hello"]


async def test_approval_waits_for_a_human(example_client: LangGraphClient) -> None:
    thread = await example_client.threads.create()
    waiting = await example_client.runs.wait(
        thread["thread_id"], "approval", input={"request": "deploy"}
    )
    assert waiting["__interrupt__"][0]["value"] == {"question": "Approve 'deploy'?"}
    done = await example_client.runs.wait(
        thread["thread_id"], "approval", command={"resume": "yes"}
    )
    assert done == {"request": "deploy", "decision": "yes"}
