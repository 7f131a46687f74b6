"""On PostgreSQL, the number of threads kept as it changes, so that an unfiltered search's exact
`X-Pagination-Total` is a sum of a few rows instead of a count of every thread (19 ms at a
million). See stead.storage.threads.

Each statement that adds or removes threads appends its change as a row of `thread_tally` (one
row per statement, from its transition table): appending locks nothing, so writers of threads
never wait for each other. Every 64th change also folds the table into one row, at most once per
transaction (a fold's deleted rows stay in a transaction's way until it ends) and by one
transaction at a time (an advisory lock), so the table stays a few dozen rows long.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"

# The advisory lock that lets one transaction at a time fold the tally.
_FOLD_LOCK = 5_308_142_170

_UPGRADE = [
    "CREATE TABLE thread_tally (delta bigint NOT NULL)",
    "CREATE SEQUENCE thread_tally_changes",
    # No thread is added or removed between the count and the triggers.
    "LOCK TABLE thread IN SHARE ROW EXCLUSIVE MODE",
    "INSERT INTO thread_tally (delta) SELECT count(*) FROM thread",
    # Both triggers name their transition table `changed`: one function serves them.
    f"""
    CREATE FUNCTION stead_tally_threads() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        change bigint := (SELECT count(*) FROM changed);
    BEGIN
        IF change = 0 THEN
            RETURN NULL;
        END IF;
        INSERT INTO thread_tally (delta)
            VALUES (CASE TG_OP WHEN 'DELETE' THEN -change ELSE change END);
        IF nextval('thread_tally_changes') % 64 = 0
            AND current_setting('stead.thread_tally_folded', true) IS DISTINCT FROM 'yes'
            AND pg_try_advisory_xact_lock({_FOLD_LOCK})
        THEN
            WITH folded AS (DELETE FROM thread_tally RETURNING delta)
            INSERT INTO thread_tally (delta)
                SELECT sum(delta) FROM folded HAVING count(*) > 0;
            PERFORM set_config('stead.thread_tally_folded', 'yes', true);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    f"""
    CREATE FUNCTION stead_tally_truncated_threads() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_advisory_xact_lock({_FOLD_LOCK});
        DELETE FROM thread_tally;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER thread_tally_added AFTER INSERT ON thread
        REFERENCING NEW TABLE AS changed
        FOR EACH STATEMENT EXECUTE FUNCTION stead_tally_threads()
    """,
    """
    CREATE TRIGGER thread_tally_removed AFTER DELETE ON thread
        REFERENCING OLD TABLE AS changed
        FOR EACH STATEMENT EXECUTE FUNCTION stead_tally_threads()
    """,
    """
    CREATE TRIGGER thread_tally_truncated AFTER TRUNCATE ON thread
        FOR EACH STATEMENT EXECUTE FUNCTION stead_tally_truncated_threads()
    """,
]

_DOWNGRADE = [
    "DROP TRIGGER IF EXISTS thread_tally_truncated ON thread",
    "DROP TRIGGER IF EXISTS thread_tally_removed ON thread",
    "DROP TRIGGER IF EXISTS thread_tally_added ON thread",
    "DROP FUNCTION IF EXISTS stead_tally_truncated_threads()",
    "DROP FUNCTION IF EXISTS stead_tally_threads()",
    "DROP SEQUENCE IF EXISTS thread_tally_changes",
    "DROP TABLE IF EXISTS thread_tally",
]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _DOWNGRADE:
        op.execute(statement)
