// The Stead server the tests run against: the pytest driver (tests/integration/test_js_sdk.py)
// starts it and passes its URL in STEAD_URL.
import { Client } from "@langchain/langgraph-sdk";

export const apiUrl = process.env.STEAD_URL;
if (!apiUrl) {
  throw new Error("STEAD_URL is not set: run these tests through tests/integration/test_js_sdk.py");
}

export function newClient() {
  return new Client({ apiUrl });
}
