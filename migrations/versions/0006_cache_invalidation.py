"""Notify listeners when read data changes, so in-memory response caches drop stale pages.

A statement-level trigger on each table the cached pages read sends one
`NOTIFY newsgraph_changes` per writing statement (not per row); PostgreSQL delivers it at
commit, to every listening process, and folds duplicates within a transaction.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = (
    "articles",
    "article_entities",
    "entities",
    "entity_aliases",
    "entity_redirects",
    "sources",
)

FUNCTION = """
CREATE FUNCTION newsgraph_notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  PERFORM pg_notify('newsgraph_changes', TG_TABLE_NAME);
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    op.execute(FUNCTION)
    for table in TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_notify_changes "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_notify_changes()"
        )


def downgrade() -> None:
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_notify_changes ON {table}")
    op.execute("DROP FUNCTION IF EXISTS newsgraph_notify_changes()")
