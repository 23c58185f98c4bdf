"""The change feed (a sequence number per article change) and takedown tombstones.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-27
"""

from __future__ import annotations

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

# The advisory lock that orders change numbers by commit (see newsgraph_record_change).
CHANGE_LOCK_KEY = 7_412_639_045_118_202_312

# Why numbers are taken at commit, under a lock: a sequence value taken at insert time becomes
# visible only when its transaction commits, so a mirror reading `seq > last` would skip a
# change whose (slower) transaction commits after a later number was already served. Here each
# writing transaction numbers its changes in deferred constraint triggers, which run as part of
# COMMIT, while holding a transaction-level advisory lock. PostgreSQL makes a committed
# transaction visible before it releases its locks, so the next transaction can only take
# numbers after every smaller number is visible (on a streaming replica too: it replays commits
# in the same order). Writers serialise only for the few milliseconds of numbering at commit.
RECORD_CHANGE_FUNCTION = f"""
CREATE FUNCTION newsgraph_record_change() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
  article bigint := CASE WHEN TG_OP = 'DELETE' THEN OLD.id ELSE NEW.id END;
BEGIN
  PERFORM pg_advisory_xact_lock({CHANGE_LOCK_KEY});
  IF TG_OP = 'INSERT' AND EXISTS (
      SELECT 1 FROM removed_urls r WHERE r.url IN (NEW.url, NEW.canonical_url)) THEN
    -- A takedown committed while this ingest waited on the article's row: retrying the
    -- batch refuses the item (the pipeline checks removed URLs before writing).
    RAISE EXCEPTION 'article % was removed while being ingested', NEW.canonical_url
      USING ERRCODE = 'serialization_failure';
  END IF;
  INSERT INTO article_changes AS c (article_id, seq, kind, changed_at)
  VALUES (article, nextval('article_change_seq'),
          CASE TG_OP WHEN 'INSERT' THEN 'CREATED' WHEN 'UPDATE' THEN 'UPDATED' ELSE 'REMOVED' END,
          clock_timestamp())
  ON CONFLICT (article_id) DO UPDATE
  SET seq = EXCLUDED.seq, changed_at = EXCLUDED.changed_at,
      -- Created and updated in one transaction: still new to a mirror.
      kind = CASE WHEN c.kind = 'CREATED' AND EXCLUDED.kind = 'UPDATED'
                   AND c.xmin::text = pg_current_xact_id()::xid::text
                  THEN 'CREATED' ELSE EXCLUDED.kind END;
  RETURN NULL;
END
$$
"""

UPGRADE = [
    "CREATE SEQUENCE article_change_seq AS bigint",
    # One row per article ever stored: its latest change. The feed lists these by seq, so an
    # article changed ten times since a mirror last polled is sent once, as it is now.
    """
    CREATE TABLE article_changes (
        article_id  bigint PRIMARY KEY,
        seq         bigint NOT NULL UNIQUE,
        kind        text NOT NULL CHECK (kind IN ('CREATED', 'UPDATED', 'REMOVED')),
        changed_at  timestamptz NOT NULL DEFAULT now()
    )
    """,
    "CREATE INDEX article_changes_time_idx ON article_changes (changed_at, seq)",
    # Articles taken down: the row is deleted (with its links and URLs, so every read path
    # forgets it), and what may be said about it is kept here under the same id.
    """
    CREATE TABLE article_tombstones (
        article_id     bigint PRIMARY KEY,
        source_id      bigint NOT NULL REFERENCES sources (id),
        url            text NOT NULL,
        canonical_url  text NOT NULL,
        urls           text[] NOT NULL,
        reason         text NOT NULL CHECK (reason <> ''),
        removed_at     timestamptz NOT NULL DEFAULT now(),
        removed_by     bigint REFERENCES api_keys (id),
        ingest_key_id  bigint REFERENCES api_keys (id),
        restored_at    timestamptz
    )
    """,
    # Every URL of a removed article, until an admin restores it: ingest refuses these.
    """
    CREATE TABLE removed_urls (
        url         text PRIMARY KEY,
        article_id  bigint NOT NULL REFERENCES article_tombstones (article_id) ON DELETE CASCADE
    )
    """,
    "CREATE INDEX removed_urls_article_idx ON removed_urls (article_id)",
    # Existing articles enter the feed as created, oldest first.
    """
    INSERT INTO article_changes (article_id, seq, kind, changed_at)
    SELECT id, nextval('article_change_seq'), 'CREATED', ingested_at
    FROM (SELECT id, ingested_at FROM articles ORDER BY ingested_at, id) a
    """,
    RECORD_CHANGE_FUNCTION,
    """
    CREATE CONSTRAINT TRIGGER articles_record_change
    AFTER INSERT OR UPDATE OR DELETE ON articles
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION newsgraph_record_change()
    """,
]

DOWNGRADE = [
    "DROP TRIGGER articles_record_change ON articles",
    "DROP FUNCTION newsgraph_record_change()",
    "DROP TABLE removed_urls",
    "DROP TABLE article_tombstones",
    "DROP TABLE article_changes",
    "DROP SEQUENCE article_change_seq",
]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in UPGRADE:
        op.execute(statement)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in DOWNGRADE:
        op.execute(statement)
