"""Compute backends: where a listener runs its deployments. One module per backend."""
