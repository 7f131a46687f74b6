"""Stead's schema revisions (Alembic): which ones exist, and upgrading a database to the newest.

Imported only to upgrade or to list them: Alembic costs 9 MiB resident for good, and a server
starting on a current schema needs neither (stead.storage.database.SCHEMA_HEAD).
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

_MIGRATIONS = Path(__file__).parent / "migrations"


def known_revisions() -> list[str]:
    """Every schema revision this Stead knows, oldest first."""
    revisions = ScriptDirectory.from_config(_alembic_config()).walk_revisions()
    return [script.revision for script in reversed(list(revisions))]


def upgrade_to_head(conn: Connection) -> None:
    command.upgrade(_alembic_config(conn), "head")


def _alembic_config(conn: Connection | None = None) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(_MIGRATIONS))
    if conn is not None:
        config.attributes["connection"] = conn
    return config
