from langgraph_sdk.client import LangGraphClient


async def test_wait_returns_final_state(client: LangGraphClient) -> None:
    thread = await client.threads.create()
    result = await client.runs.wait(
        thread["thread_id"], "agent", input={"messages": [{"role": "user", "content": "hi"}]}
    )
    assert isinstance(result, dict)
    assert [m["type"] for m in result["messages"]] == ["human", "ai"]
    assert result["messages"][1]["content"] == "Hello there friend"
