"""On PostgreSQL, the fencing check of checkpoint writes as a function that raises when the run's
row no longer gives it to the writing attempt: queued in the writes' pipeline, it costs no round
trip of its own (a SELECT whose answer the writer waited for did). See stead.storage.fencing.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    # FOR SHARE conflicts with the row lock of any UPDATE of the run (the reaper's takeover, a
    # claim), so that update and a write holding this lock in the same transaction serialise.
    op.execute(
        """
        CREATE OR REPLACE FUNCTION stead_hold_attempt(p_run_id text, p_attempt integer)
        RETURNS void LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM 1 FROM run
                WHERE run_id = p_run_id AND attempt = p_attempt AND status = 'running'
                FOR SHARE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'run % attempt % was taken over', p_run_id, p_attempt
                    USING ERRCODE = 'SL001';
            END IF;
        END
        $$
        """
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS stead_hold_attempt(text, integer)")
