"""The control plane's durable state: schema, migrations and queries, SQLite or PostgreSQL."""

from stead.controlplane.storage.database import ControlPlaneDatabase, ControlPlaneTransaction

__all__ = ["ControlPlaneDatabase", "ControlPlaneTransaction"]
