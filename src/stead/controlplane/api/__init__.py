"""The control plane's HTTP API: the LangSmith Deployments paths at / and /api-host, and the
data-plane paths its listeners and self-reporting servers call."""
