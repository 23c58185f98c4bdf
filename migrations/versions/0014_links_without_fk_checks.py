"""Article–entity links without per-row foreign-key checks.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-07

`article_entities` (~10 rows per ingested article) referenced `articles` and `entities` with
foreign keys, so every link the ingest inserted ran two key checks, each looking a row up and
locking it (`FOR KEY SHARE`) through a trigger of its own: 80 + 93 ms of a 500-article
batch's 210 ms link insert, ~345 µs per article, a third of the ingest transaction's time
(`bench/ingest_stages.py --explain`, 1M-article database). The ingest now takes what those
checks gave it once per batch instead (`service.db.writes.live_entities`):
- its articles: it links only the articles it has just inserted or updated in the same
  transaction, so their rows are locked until it commits;
- the entities: one statement locks every linked entity `FOR KEY SHARE`, in id order, so no
  entity merge can delete one before the links commit; an entity already merged away is
  linked as its survivor (through `entity_redirects`) rather than failing the article (with
  the key, a linker built before a merge rejected every article mentioning the merged name
  until it was rebuilt);
- an entity merge locks the articles whose links it moves (`FOR KEY SHARE`), so a takedown
  cannot delete one under it.
What the keys still did is `ON DELETE CASCADE`: statement triggers on `articles` (takedowns)
and `entities` (merges) now delete the links of removed rows instead.
"""

from __future__ import annotations

from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None

KEYS = (("article_id", "articles"), ("entity_id", "entities"))


def upgrade() -> None:
    for column, table in KEYS:
        op.execute(f"ALTER TABLE article_entities DROP CONSTRAINT article_entities_{column}_fkey")
        op.execute(f"""
            CREATE FUNCTION newsgraph_delete_links_of_gone_{table}() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
              DELETE FROM article_entities WHERE {column} IN (SELECT id FROM gone_{table});
              RETURN NULL;
            END $$
        """)
        op.execute(
            f"CREATE TRIGGER {table}_links_deleted AFTER DELETE ON {table} "
            f"REFERENCING OLD TABLE AS gone_{table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_delete_links_of_gone_{table}()"
        )


def downgrade() -> None:
    for column, table in KEYS:
        op.execute(f"DROP TRIGGER {table}_links_deleted ON {table}")
        op.execute(f"DROP FUNCTION newsgraph_delete_links_of_gone_{table}()")
        # Links of rows removed meanwhile would fail the key: the triggers removed them.
        op.execute(
            f"ALTER TABLE article_entities ADD CONSTRAINT article_entities_{column}_fkey "
            f"FOREIGN KEY ({column}) REFERENCES {table} (id) ON DELETE CASCADE"
        )
