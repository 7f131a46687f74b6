"""Who a request is (API keys, custom `langgraph_sdk.Auth` handlers) and what it may touch."""
