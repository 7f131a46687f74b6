"""Stead's tables in an SQLite file taken to a given schema revision with Alembic, as a Stead of
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
    config = AlembicConfig()
    config.set_main_option(
        "script_location", str(Path(storage_database.__file__).parent / "migrations")
    )
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        getattr(command, direction)(config, revision)
    engine.dispose()
