// runs.createBatch sends each payload as given (camelCase `assistantId` included) plus
// `assistant_id`: the server must take it, ignoring the fields it does not know.
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { test } from "node:test";

import { newClient } from "./server.js";

test("runs.createBatch creates stateless background runs that run to completion", async () => {
  const client = newClient();
  const marker = randomUUID();

  const runs = await client.runs.createBatch([
    { assistantId: "echo", input: { text: "one" }, metadata: { marker } },
    { assistantId: "factory", input: { text: "two" }, metadata: { marker } },
  ]);

  assert.equal(runs.length, 2);
  assert.deepEqual(
    runs.map((run) => run.status),
    ["pending", "pending"],
  );
  assert.equal(new Set(runs.map((run) => run.thread_id)).size, 2);
  assert.deepEqual(
    runs.map((run) => run.metadata.marker),
    [marker, marker],
  );
  assert.deepEqual(
    runs.map((run) => run.kwargs.input),
    [{ text: "one" }, { text: "two" }],
  );
});

test("runs.createBatch runs can be joined; snake_case options reach the server", async () => {
  const client = newClient();

  // createBatch does not translate options other than assistantId: they go as written, so
  // `on_completion` keeps each run's thread once it is done.
  const runs = await client.runs.createBatch([
    { assistantId: "echo", input: { text: "a" }, on_completion: "keep" },
    { assistantId: "factory", input: { text: "b" }, on_completion: "keep" },
  ]);

  const results = [];
  for (const run of runs) {
    results.push(await client.runs.join(run.thread_id, run.run_id));
  }
  assert.deepEqual(results, [{ text: "a" }, { text: "B!" }]);
  for (const run of runs) {
    const done = await client.runs.get(run.thread_id, run.run_id);
    assert.equal(done.status, "success");
  }
});
