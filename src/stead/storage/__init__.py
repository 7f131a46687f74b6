"""Durable state: schema, migrations and queries, for SQLite and PostgreSQL."""

from stead.storage._query import Page
from stead.storage.database import Database, Transaction

__all__ = ["Database", "Page", "Transaction"]
