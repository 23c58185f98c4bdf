"""API keys, and which key last wrote each article.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26
"""

from __future__ import annotations

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

UPGRADE = [
    # A key is stored only as an HMAC-SHA-256 of its token under the server secret
    # (NEWSGRAPH_KEY_SECRET); `prefix` is the token's first characters, shown in lists so
    # people can tell keys apart. `sources` are the domains an ingest key may write.
    """
    CREATE TABLE api_keys (
        id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        name          text NOT NULL CHECK (name <> '' AND length(name) <= 200),
        role          text NOT NULL CHECK (role IN ('reader', 'ingest', 'admin')),
        prefix        text NOT NULL,
        key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
        sources       text[] NOT NULL DEFAULT '{}',
        created_at    timestamptz NOT NULL DEFAULT now(),
        last_used_at  timestamptz,
        revoked_at    timestamptz
    )
    """,
    # Which key last wrote the article (NULL: written without a key, e.g. `newsgraph ingest`).
    # Keys are revoked, never deleted, so the reference stays meaningful.
    "ALTER TABLE articles ADD COLUMN ingest_key_id bigint REFERENCES api_keys (id)",
    "CREATE INDEX articles_ingest_key_idx ON articles (ingest_key_id) WHERE ingest_key_id IS NOT NULL",
]

DOWNGRADE = [
    "ALTER TABLE articles DROP COLUMN ingest_key_id",
    "DROP TABLE api_keys",
]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in DOWNGRADE:
        op.execute(statement)
