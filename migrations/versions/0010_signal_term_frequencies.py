"""Related stories: each article's term frequencies beside its TF-IDF weights.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25

`article_signals.weights` are TF-IDF weights with the document frequencies counted when the
article was indexed: the first articles of a database saw IDF of a few hundred documents,
and their weights stay skewed. `tfs` keeps the sublinear term frequency (1 + log count) of
each term of `terms`, so ranking can weigh the stored terms with the IDF of now
(`service.related.find_related`). Existing rows keep `tfs` NULL and are ranked with their
stored weights, as before, until they are indexed again: no backfill is needed.
"""

from __future__ import annotations

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    # A nullable column without a default: a catalogue change, no table rewrite.
    op.execute("ALTER TABLE article_signals ADD COLUMN tfs real[]")


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    op.execute("ALTER TABLE article_signals DROP COLUMN tfs")
