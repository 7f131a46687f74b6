"""On PostgreSQL, the end of a stateless run's attempt as one function: lock the thread, delete
the run if this attempt still holds it, then delete the thread. One round trip instead of five
(BEGIN, three statements, COMMIT); see stead.storage.runs.RunRepository.end_temporary_attempt.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # The thread's row first, as everywhere a run ends (stead.storage.runs._lock_thread_of):
    # one order of locks avoids deadlocks with a run being created on the thread.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION stead_end_temporary_attempt(p_run_id text, p_attempt integer)
        RETURNS boolean LANGUAGE plpgsql AS $$
        DECLARE
            ended_thread_id text;
        BEGIN
            PERFORM 1 FROM thread
                WHERE thread_id = (SELECT thread_id FROM run WHERE run_id = p_run_id)
                FOR UPDATE;
            DELETE FROM run
                WHERE run_id = p_run_id AND attempt = p_attempt AND status = 'running'
                RETURNING thread_id INTO ended_thread_id;
            IF NOT FOUND THEN
                RETURN false;
            END IF;
            DELETE FROM thread WHERE thread_id = ended_thread_id;
            RETURN true;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS stead_end_temporary_attempt(text, integer)")
