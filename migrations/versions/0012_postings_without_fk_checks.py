"""Related-stories postings and band keys without per-row foreign-key checks.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07

`article_terms` (~16 rows per article) and `article_bands` (~8) referenced `articles` with a
foreign key, so every row the related-stories indexer inserted ran a key check that looks the
article up and locks its row (`FOR KEY SHARE`), once per row: 271 and 88 µs per indexed
article, 15 % of the index stage's time (`bench/ingest_stages.py --explain`, 1M-article
database). Those checks prove nothing the indexer does not already hold: it writes these rows
only for articles it has locked `FOR KEY SHARE` in the same transaction
(`service.db.related_queue.lock_articles`), so no article can go while its rows are written.
What the keys still did is `ON DELETE CASCADE`; a statement trigger on `articles` now deletes
the postings and band keys of removed articles instead (takedowns are the only deletes).
"""

from __future__ import annotations

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = ("article_terms", "article_bands")

FUNCTION = """
CREATE FUNCTION newsgraph_delete_related_postings() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM article_terms WHERE article_id IN (SELECT id FROM gone_articles);
  DELETE FROM article_bands WHERE article_id IN (SELECT id FROM gone_articles);
  RETURN NULL;
END $$
"""


def upgrade() -> None:
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT {table}_article_id_fkey")
    op.execute(FUNCTION)
    op.execute(
        "CREATE TRIGGER articles_related_postings_deleted AFTER DELETE ON articles "
        "REFERENCING OLD TABLE AS gone_articles "
        "FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_delete_related_postings()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER articles_related_postings_deleted ON articles")
    op.execute("DROP FUNCTION newsgraph_delete_related_postings()")
    for table in TABLES:
        # Rows of articles removed meanwhile would fail the key: the trigger removed them.
        op.execute(
            f"ALTER TABLE {table} ADD CONSTRAINT {table}_article_id_fkey "
            "FOREIGN KEY (article_id) REFERENCES articles (id) ON DELETE CASCADE"
        )
