"""Related stories: text signals, story clusters, wire copies and editorial exclusion.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25

Everything derived from an article's text lives beside `articles`, not in it: a derived row
can be recomputed (or backfilled in batches, `bench/related_backfill.py`) without touching
the articles, and ON DELETE CASCADE removes it with its article.
"""

from __future__ import annotations

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = [
    # A story is a cluster of articles about one event. A merged story points at the one it
    # was merged into, so its id keeps resolving (chains are shortened on every merge).
    """
    CREATE TABLE stories (
        id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        title               text NOT NULL,
        merged_into         bigint REFERENCES stories (id),
        article_count       integer NOT NULL DEFAULT 0,
        first_published_at  timestamptz NOT NULL,
        last_published_at   timestamptz NOT NULL,
        created_at          timestamptz NOT NULL DEFAULT now(),
        updated_at          timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX stories_latest_idx ON stories (last_published_at DESC, id DESC) WHERE merged_into IS NULL",
    "CREATE INDEX stories_merged_idx ON stories (merged_into) WHERE merged_into IS NOT NULL",
    # One row per article: its TF-IDF vector (terms by weight, heaviest first), MinHash
    # signature, story, original (when it is a near-identical copy), and the editorial flag.
    # published_at, dated, source_id and language are copies, so candidates are scored
    # without reading `articles`.
    """
    CREATE TABLE article_signals (
        article_id            bigint PRIMARY KEY REFERENCES articles (id) ON DELETE CASCADE,
        story_id              bigint REFERENCES stories (id),
        duplicate_of          bigint REFERENCES articles (id) ON DELETE SET NULL,
        exclude_from_related  boolean NOT NULL DEFAULT false,
        source_id             bigint NOT NULL,
        language              text NOT NULL,
        published_at          timestamptz NOT NULL,
        dated                 boolean NOT NULL,
        terms                 integer[] NOT NULL,
        weights               real[] NOT NULL,
        signature             bytea
    )
    """,
    "CREATE INDEX article_signals_story_idx ON article_signals (story_id, published_at DESC, article_id DESC)",
    "CREATE INDEX article_signals_duplicate_idx ON article_signals (duplicate_of) WHERE duplicate_of IS NOT NULL",
    # Postings of each article's most telling terms, by time: candidates of an article are the
    # nearest postings of its terms on each side of its date (bounded index scans).
    """
    CREATE TABLE article_terms (
        term          integer NOT NULL,
        published_at  timestamptz NOT NULL,
        article_id    bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        PRIMARY KEY (term, published_at, article_id)
    )
    """,
    "CREATE INDEX article_terms_article_idx ON article_terms (article_id)",
    # MinHash LSH band keys: articles sharing a key are near-duplicate candidates.
    """
    CREATE TABLE article_bands (
        band        bigint NOT NULL,
        article_id  bigint NOT NULL REFERENCES articles (id) ON DELETE CASCADE,
        PRIMARY KEY (band, article_id)
    )
    """,
    "CREATE INDEX article_bands_article_idx ON article_bands (article_id)",
    # Document frequencies for IDF, and the number of documents counted.
    "CREATE TABLE term_stats (term integer PRIMARY KEY, df integer NOT NULL)",
    "CREATE TABLE related_stats (id boolean PRIMARY KEY DEFAULT true CHECK (id), documents bigint NOT NULL)",
    "INSERT INTO related_stats (documents) VALUES (0)",
    # A wire service's copy of a story is its original, whatever the dates say.
    "ALTER TABLE sources ADD COLUMN is_wire_service boolean NOT NULL DEFAULT false",
]

DOWNGRADE = [
    "ALTER TABLE sources DROP COLUMN is_wire_service",
    "DROP TABLE related_stats",
    "DROP TABLE term_stats",
    "DROP TABLE article_bands",
    "DROP TABLE article_terms",
    "DROP TABLE article_signals",
    "DROP TABLE stories",
]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in DOWNGRADE:
        op.execute(statement)
