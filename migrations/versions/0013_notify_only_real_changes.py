"""Change notifications only for statements that changed rows.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07

Migration 0006's statement triggers sent `NOTIFY newsgraph_changes` for every writing
statement on the tables that cached pages read, including statements that changed nothing:
an ingest of articles that are all `UNCHANGED` (a partner re-sending its feed), the upsert of
sources that already exist, a fold with no deltas. Each such statement emptied the response
cache of every server process. Now one trigger per event looks at the statement's transition
table (`REFERENCING NEW/OLD TABLE`) and notifies only when it holds a row; TRUNCATE, which
has no transition table, still always notifies. The INSERT triggers of `articles` and
`article_entities` share their transition tables with the counter triggers of migration 0011
(PostgreSQL captures the rows once per table and event), so inserts capture nothing more.
"""

from __future__ import annotations

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
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
CREATE FUNCTION newsgraph_notify_rows_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT FROM changed_rows) THEN
    PERFORM pg_notify('newsgraph_changes', TG_TABLE_NAME);
  END IF;
  RETURN NULL;
END $$
"""

# A trigger with a transition table takes one event only.
EVENTS = (("inserted", "INSERT", "NEW"), ("updated", "UPDATE", "NEW"), ("deleted", "DELETE", "OLD"))


def upgrade() -> None:
    op.execute(FUNCTION)
    for table in TABLES:
        op.execute(f"DROP TRIGGER {table}_notify_changes ON {table}")
        for name, event, image in EVENTS:
            op.execute(
                f"CREATE TRIGGER {table}_notify_{name} AFTER {event} ON {table} "
                f"REFERENCING {image} TABLE AS changed_rows "
                "FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_notify_rows_changed()"
            )
        # Migration 0006's function (always notifies) is kept for TRUNCATE.
        op.execute(
            f"CREATE TRIGGER {table}_notify_truncated AFTER TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_notify_changes()"
        )


def downgrade() -> None:
    for table in TABLES:
        for name in ("inserted", "updated", "deleted", "truncated"):
            op.execute(f"DROP TRIGGER {table}_notify_{name} ON {table}")
        op.execute(
            f"CREATE TRIGGER {table}_notify_changes "
            f"AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_notify_changes()"
        )
    op.execute("DROP FUNCTION newsgraph_notify_rows_changed()")
