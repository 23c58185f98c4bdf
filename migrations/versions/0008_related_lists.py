"""Stored related-stories lists, kept fresh through a refresh log written by triggers.

`related_lists` holds each article's ranked related items for the default arguments of
`relatedStories` (service/related/lists.py), as computed by the online ranking. A list is
valid while no row for its article waits in `related_refresh`: statement-level triggers on
`article_signals` append one when an article's signals are written or change (`cascade`: the
refresher then also re-ranks the articles in its old and new lists, where it may now enter
or leave), and when an article leaves related lists (taken down or excluded), one for every
list that names it. The log is append-only, so writers never wait for the refresher; a refresher claims rows
(SKIP LOCKED, `claimed_at`), computes their lists, and deletes the rows in the transaction
that stores the lists. Existing signals are queued here, so an upgraded service computes their lists in the
background.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

from __future__ import annotations

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = (
    """
CREATE TABLE related_lists (
    article_id bigint PRIMARY KEY,
    -- [[article id, score, text similarity, time gap hours, relation, [entity ids],
    --   source id], ...] best first: json keeps numbers as Python wrote them.
    items json NOT NULL,
    item_ids bigint[] NOT NULL,
    -- The lowest score of a full list (NULL: not full): a newcomer scoring below it is
    -- not worth a re-rank of this list.
    floor real,
    computed_at timestamptz NOT NULL DEFAULT now()
)
""",
    """
CREATE INDEX related_lists_items_idx ON related_lists USING gin (item_ids)
""",
    """
CREATE TABLE related_refresh (
    seq bigserial PRIMARY KEY,
    article_id bigint NOT NULL,
    cascade boolean NOT NULL,
    queued_at timestamptz NOT NULL DEFAULT now(),
    -- Set while a refresher computes the row's list (taken again after 2 minutes: it died).
    claimed_at timestamptz
)
""",
    """
CREATE INDEX related_refresh_article_idx ON related_refresh (article_id)
""",
)

FUNCTIONS = (
    """
CREATE FUNCTION newsgraph_related_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO related_refresh (article_id, cascade)
  SELECT article_id, true FROM new_signals ORDER BY article_id;
  RETURN NULL;
END $$
""",
    """
CREATE FUNCTION newsgraph_related_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  -- What ranks an article (its text, time, source, story, copies) changed: re-rank it and,
  -- through the cascade, the articles whose lists it may now enter or leave.
  INSERT INTO related_refresh (article_id, cascade)
  SELECT n.article_id, true
  FROM new_signals n JOIN old_signals o USING (article_id)
  WHERE (n.terms, n.weights, n.story_id, n.duplicate_of, n.published_at, n.dated,
         n.source_id, n.language)
        IS DISTINCT FROM
        (o.terms, o.weights, o.story_id, o.duplicate_of, o.published_at, o.dated,
         o.source_id, o.language)
  ORDER BY n.article_id;
  -- Newly excluded: every list naming it is stale (a re-included one is found by cascade).
  INSERT INTO related_refresh (article_id, cascade)
  SELECT DISTINCT l.article_id, false
  FROM related_lists l
  WHERE l.item_ids && ARRAY(
      SELECT n.article_id FROM new_signals n JOIN old_signals o USING (article_id)
      WHERE n.exclude_from_related AND NOT o.exclude_from_related)
  ORDER BY l.article_id;
  INSERT INTO related_refresh (article_id, cascade)
  SELECT n.article_id, true
  FROM new_signals n JOIN old_signals o USING (article_id)
  WHERE o.exclude_from_related AND NOT n.exclude_from_related
  ORDER BY n.article_id;
  RETURN NULL;
END $$
""",
    """
CREATE FUNCTION newsgraph_related_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM related_lists WHERE article_id IN (SELECT article_id FROM old_signals);
  INSERT INTO related_refresh (article_id, cascade)
  SELECT DISTINCT l.article_id, false
  FROM related_lists l
  WHERE l.item_ids && ARRAY(SELECT article_id FROM old_signals)
  ORDER BY l.article_id;
  RETURN NULL;
END $$
""",
    """
CREATE TRIGGER article_signals_related_inserted AFTER INSERT ON article_signals
REFERENCING NEW TABLE AS new_signals
FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_related_inserted()
""",
    """
CREATE TRIGGER article_signals_related_updated AFTER UPDATE ON article_signals
REFERENCING OLD TABLE AS old_signals NEW TABLE AS new_signals
FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_related_updated()
""",
    """
CREATE TRIGGER article_signals_related_deleted AFTER DELETE ON article_signals
REFERENCING OLD TABLE AS old_signals
FOR EACH STATEMENT EXECUTE FUNCTION newsgraph_related_deleted()
""",
)


def upgrade() -> None:
    for statement in (*TABLES, *FUNCTIONS):
        op.execute(statement)
    # Newest first: their pages are the ones read most.
    op.execute(
        "INSERT INTO related_refresh (article_id, cascade) "
        "SELECT article_id, false FROM article_signals ORDER BY published_at DESC, article_id DESC"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER IF EXISTS article_signals_related_deleted ON article_signals")
    op.execute("DROP TRIGGER IF EXISTS article_signals_related_updated ON article_signals")
    op.execute("DROP TRIGGER IF EXISTS article_signals_related_inserted ON article_signals")
    op.execute("DROP FUNCTION IF EXISTS newsgraph_related_deleted()")
    op.execute("DROP FUNCTION IF EXISTS newsgraph_related_updated()")
    op.execute("DROP FUNCTION IF EXISTS newsgraph_related_inserted()")
    op.execute("DROP TABLE IF EXISTS related_refresh")
    op.execute("DROP TABLE IF EXISTS related_lists")
