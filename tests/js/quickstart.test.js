// The quick start of the @langchain/langgraph-sdk README, as printed there, on the `paced_chat`
// test graph (a fake chat model that answers "Hello there friend", a token every 20 ms as a real
// model streams: against a run that ends within a millisecond the SDK's thread.messages loses a
// race with its own lifecycle stream).
import assert from "node:assert/strict";
import { test } from "node:test";

import { newClient } from "./server.js";

test("threads.stream: the README quick start streams the reply and resolves the output", async () => {
  const client = newClient();

  // Open a thread-centric stream (the recommended way to stream).
  const thread = client.threads.stream({ assistantId: "paced_chat" });

  await thread.run.start({
    input: { messages: [{ role: "user", content: "hello" }] },
  });

  const tokens = [];
  for await (const message of thread.messages) {
    for await (const token of message.text) {
      tokens.push(token);
    }
  }

  const output = await thread.output;
  await thread.close();

  assert.equal(tokens.join(""), "Hello there friend");
  // The SDK hands back @langchain/core messages: `text` joins a message's text content.
  assert.deepEqual(
    output.messages.map((message) => message.text),
    ["hello", "Hello there friend"],
  );
  const state = await client.threads.getState(thread.threadId);
  assert.equal(state.values.messages.length, 2);
});
