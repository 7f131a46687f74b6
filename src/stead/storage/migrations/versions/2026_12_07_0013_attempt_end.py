"""On PostgreSQL, the end of a run's attempt on its thread as one function: lock the thread,
record the run's status if this attempt still holds the run, then settle the thread (busy while
its other runs are active, else the status it is given) with the run's state and error. One round
trip instead of five (BEGIN, three statements, COMMIT); see
stead.services.thread_status.end_attempt, whose transaction on SQLite does the same.

Each statement of a PL/pgSQL function takes a snapshot of its own at READ COMMITTED: the check
of the thread's other runs, after the lock, sees every run created before it was granted, as the
statements of a transaction do.

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The thread's row first, as everywhere a run ends (stead.storage.runs._lock_thread_of):
    # one order of locks avoids deadlocks with a run being created on the thread.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION stead_end_attempt(
            p_run_id text,
            p_attempt integer,
            p_status text,
            p_now timestamptz,
            p_error jsonb,
            p_sets_state boolean,
            p_values jsonb,
            p_interrupts jsonb,
            p_status_when_free text
        )
        RETURNS TABLE (recorded boolean, thread_busy boolean) LANGUAGE plpgsql AS $$
        DECLARE
            ended_thread_id text;
            settled_status text;
        BEGIN
            PERFORM 1 FROM thread
                WHERE thread.thread_id = (SELECT run.thread_id FROM run WHERE run.run_id = p_run_id)
                FOR UPDATE;
            UPDATE run SET status = p_status, lease_expires_at = NULL, updated_at = p_now
                WHERE run.run_id = p_run_id AND run.attempt = p_attempt AND run.status = 'running'
                RETURNING run.thread_id INTO ended_thread_id;
            IF NOT FOUND THEN
                RETURN QUERY SELECT false, false;
                RETURN;
            END IF;
            UPDATE thread SET
                updated_at = p_now,
                error = p_error,
                "values" = CASE WHEN p_sets_state THEN p_values ELSE thread."values" END,
                interrupts = CASE WHEN p_sets_state THEN p_interrupts ELSE thread.interrupts END,
                state_updated_at = CASE
                    WHEN p_sets_state THEN p_now ELSE thread.state_updated_at
                END,
                status = CASE
                    WHEN EXISTS (
                        SELECT 1 FROM run
                        WHERE run.thread_id = ended_thread_id
                            AND (run.status = 'pending' OR run.status = 'running')
                            AND run.run_id <> p_run_id
                    ) THEN 'busy'
                    ELSE p_status_when_free
                END,
                expires_at = CASE
                    WHEN thread.ttl_minutes IS NULL THEN thread.expires_at
                    ELSE p_now + thread.ttl_minutes * interval '1 minute'
                END
                WHERE thread.thread_id = ended_thread_id
                RETURNING thread.status INTO settled_status;
            RETURN QUERY SELECT true, coalesce(settled_status = 'busy', false);
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "DROP FUNCTION IF EXISTS stead_end_attempt("
        "text, integer, text, timestamptz, jsonb, boolean, jsonb, jsonb, text)"
    )
