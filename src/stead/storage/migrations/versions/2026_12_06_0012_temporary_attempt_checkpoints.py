"""On PostgreSQL, the end of a stateless run's attempt deletes its thread's checkpoints too. The
worker deleted them in a statement of its own after the end (LangGraph's saver shares the
database): one round trip per stateless run less. An attempt that was taken over deletes nothing,
the checkpoints included: they belong to the attempt that holds the run now.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"

_FUNCTION = """
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
        {checkpoints}
        RETURN true;
    END
    $$
"""
_CHECKPOINTS = """
        DELETE FROM checkpoint_writes WHERE thread_id = ended_thread_id;
        DELETE FROM checkpoint_blobs WHERE thread_id = ended_thread_id;
        DELETE FROM checkpoints WHERE thread_id = ended_thread_id;
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.format(checkpoints=_CHECKPOINTS))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_FUNCTION.format(checkpoints=""))
