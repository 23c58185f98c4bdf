"""Related-stories indexing after commit: a durable queue of articles to (re)index.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26

The ingest transaction records the ids of the articles it created or changed here (one
statement per batch); background indexers (`service.related.indexer`, one per server
process) claim ids with `FOR UPDATE SKIP LOCKED`, index them and delete them in one
transaction, so a crash re-indexes and never loses an id. There is deliberately no foreign
key to `articles`: a taken-down article's id stays queued until an indexer claims it and
finds nothing to index (a cascade would make takedowns wait for, and deadlock with, the
indexer's locks).

A statement-level trigger sends `NOTIFY newsgraph_related_queue` on every enqueueing
statement (delivered at commit, folded per transaction), which wakes idle indexers at once;
they also poll every second. The table churns (every row is inserted and deleted once), so
autovacuum runs after a fixed number of dead rows rather than a fraction of a tiny table.
"""

from __future__ import annotations

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = [
    """
    CREATE TABLE related_queue (
        article_id  bigint PRIMARY KEY,
        queued_at   timestamptz NOT NULL DEFAULT now()
    ) WITH (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 5000,
            autovacuum_vacuum_insert_scale_factor = 0,
            autovacuum_vacuum_insert_threshold = 5000)
    """,
    """
    CREATE FUNCTION newsgraph_notify_related_queue() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      PERFORM pg_notify('newsgraph_related_queue', '');
      RETURN NULL;
    END $$
    """,
    """
    CREATE TRIGGER related_queue_notify AFTER INSERT ON related_queue
    FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_notify_related_queue()
    """,
]

DOWNGRADE = [
    "DROP TRIGGER IF EXISTS related_queue_notify ON related_queue",
    "DROP FUNCTION IF EXISTS newsgraph_notify_related_queue()",
    "DROP TABLE IF EXISTS related_queue",
]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in DOWNGRADE:
        op.execute(statement)
