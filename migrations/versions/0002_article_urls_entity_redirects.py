"""Alternate article URLs and redirects for merged entities.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = [
    # Every canonicalised URL seen for an article (its own, AMP and syndication copies, the
    # partner's rel=canonical), so article(url:) and ingest dedupe resolve any of them.
    """
    CREATE TABLE article_urls (
        url         text PRIMARY KEY,
        article_id  bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX article_urls_article_idx ON article_urls (article_id)",
    """
    INSERT INTO article_urls (url, article_id)
    SELECT canonical_url, id FROM articles
    UNION
    SELECT url, id FROM articles
    ON CONFLICT DO NOTHING
    """,
    # An entity merged into another keeps answering to its old id and slug.
    """
    CREATE TABLE entity_redirects (
        old_id     bigint PRIMARY KEY,
        old_slug   text NOT NULL UNIQUE,
        entity_id  bigint NOT NULL REFERENCES entities (id) ON DELETE CASCADE,
        merged_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX entity_redirects_entity_idx ON entity_redirects (entity_id)",
]

DOWNGRADE = [
    "DROP TABLE entity_redirects",
    "DROP TABLE article_urls",
]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in DOWNGRADE:
        op.execute(statement)
