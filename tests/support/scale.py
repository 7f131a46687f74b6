"""A PostgreSQL seeded as a large deployment's: for the scale tier and bench/search_scale.py."""

from __future__ import annotations

import psycopg


def seed(conn: psycopg.Connection, threads: int, checkpoints_per_thread: int) -> None:
    """Threads spread over a thousand users, a finished run on each, and checkpoints inserted in
    key order, which builds their primary key fastest (a graph's steps write them as time-ordered
    ids)."""
    conn.execute(
        """
        INSERT INTO thread (thread_id, metadata, config, status, "values", interrupts,
                            created_at, updated_at, state_updated_at)
        SELECT gen_random_uuid()::text, jsonb_build_object('user', 'u' || (n %% 1000)), '{}',
               'idle', '{"n": 1}', '{}', now() - n * interval '1 second', now(), now()
        FROM generate_series(1, %s) AS n
        """,
        (threads,),
    )
    conn.execute(
        """
        INSERT INTO run (run_id, thread_id, assistant_id, status, metadata, kwargs,
                         multitask_strategy, attempt, created_at, updated_at)
        SELECT gen_random_uuid()::text, thread_id, 'seeded', 'success', '{}', '{}', 'reject', 1,
               created_at, created_at
        FROM thread
        """
    )
    conn.execute(
        """
        INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, checkpoint, metadata)
        SELECT t.thread_id, '', lpad(g::text, 12, '0'), '{"v": 4}', '{}'
        FROM (SELECT thread_id FROM thread ORDER BY thread_id) AS t,
             generate_series(1, %s) AS g
        ORDER BY t.thread_id, g
        """,
        (checkpoints_per_thread,),
    )
    # As autovacuum leaves a table in service: with its visibility map set, the exact total of a
    # search page (a count over every thread when unfiltered) reads an index, not the table.
    # Without it the plan depended on whether autovacuum had got there yet.
    conn.execute("VACUUM ANALYZE thread")
    conn.execute("ANALYZE")
