"""What Stead's tables need of their indexes: a row whose deletion cascades to another table's
rows must be found there through an index, or every deletion reads that whole table.

Reference: src/stead/storage/schema.py; issue 16.
"""

from __future__ import annotations

import sqlite3
import uuid
from pathlib import Path

from stead.storage import Database
from stead.storage.schema import metadata

_NOW = "2026-12-05 00:00:00.000000"


def test_every_foreign_key_leads_an_index() -> None:
    for table in metadata.tables.values():
        leading = [tuple(index.columns.keys()) for index in table.indexes]
        leading.append(tuple(table.primary_key.columns.keys()))
        for key in table.foreign_key_constraints:
            columns = tuple(key.column_keys)
            assert any(found[: len(columns)] == columns for found in leading), (
                f"{table.name}.{', '.join(columns)} references {key.referred_table.name} "
                "and leads no index"
            )


async def test_deleting_a_thread_does_not_read_every_cron(tmp_path: Path) -> None:
    path = tmp_path / "stead.sqlite"
    db = Database(f"sqlite:///{path}")
    await db.migrate()
    await db.close()
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(
        "INSERT INTO assistant (assistant_id, graph_id, config, context, metadata, name, version,"
        " created_at, updated_at) VALUES ('a', 'echo', '{}', '{}', '{}', 'a', 1, ?, ?)",
        (_NOW, _NOW),
    )
    steps = [_steps_to_add_and_delete_a_thread(conn)]
    _add_crons(conn, 5_000)
    steps.append(_steps_to_add_and_delete_a_thread(conn))
    conn.close()
    # SQLite's virtual machine steps: a scan of the crons would take thousands more.
    assert steps[1] < steps[0] + 200, steps


def _add_crons(conn: sqlite3.Connection, count: int) -> None:
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO cron (cron_id, assistant_id, schedule, payload, metadata, enabled,"
        " created_at, updated_at) VALUES (?, 'a', '* * * * *', '{}', '{}', 1, ?, ?)",
        ((str(uuid.uuid4()), _NOW, _NOW) for _ in range(count)),
    )
    conn.execute("COMMIT")


def _steps_to_add_and_delete_a_thread(conn: sqlite3.Connection) -> int:
    thread_id = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO thread (thread_id, metadata, config, status, interrupts, created_at,"
        " updated_at, state_updated_at) VALUES (?, '{}', '{}', 'idle', '{}', ?, ?, ?)",
        (thread_id, _NOW, _NOW, _NOW),
    )
    steps = [0]

    def count() -> int:
        steps[0] += 1
        return 0

    conn.set_progress_handler(count, 1)
    conn.execute("DELETE FROM thread WHERE thread_id = ?", (thread_id,))
    conn.set_progress_handler(None, 1)
    return steps[0]
