"""Stead's tables in a database taken to a given schema revision with Alembic, as a Stead of
that revision left them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig

from stead.storage import database as storage_database


def migrate_sqlite_to(
    database: Path, revision: str, direction: Literal["upgrade", "downgrade"] = "upgrade"
) -> None:
    migrate_to(f"sqlite:///{database}", revision, direction)


def migrate_to(
    url: str, revision: str, direction: Literal["upgrade", "downgrade"] = "upgrade"
) -> None:
    """Take the database at `url` (a synchronous SQLAlchemy URL) to `revision`."""
    config = AlembicConfig()
    config.set_main_option(
        "script_location", str(Path(storage_database.__file__).parent / "migrations")
    )
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, direction)(config, revision)
    engine.dispose()
