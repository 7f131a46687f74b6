"""The control plane's rules: deployments and their revisions, listeners, keys, secrets."""
