"""Article counters kept from deltas: writers append, a background fold applies.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07

Until now the statement triggers on `article_entities` and `articles` updated
`entities.article_count` and `sources.article_count` in the writing transaction. Every batch
touches the popular entities and sources, so two writers queued on those rows' locks until
the first committed (and two COPYs deadlocked), and since `entities.article_count` is indexed
(popularity order), each counter update was a non-HOT update that wrote all seven entity
indexes, the trigram GIN included. Now the triggers append each statement's net change per
entity and per source to an unindexed table, which no two writers ever wait on, and
`service.db.counters.fold_counts` moves the deltas into the counters, summed over every
batch committed since the last fold (each server process runs it every second). Counts are
therefore eventually consistent (README, "Writing: bulk ingest", *Counts*).
"""

from __future__ import annotations

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

TABLES = [
    # No index and no key: appended by every writing statement, read whole and deleted by
    # the fold. Logged, so a committed delta survives a crash like its rows do.
    "CREATE TABLE entity_count_deltas (entity_id bigint NOT NULL, delta integer NOT NULL)",
    "CREATE TABLE source_count_deltas (source_id bigint NOT NULL, delta integer NOT NULL)",
]


def _function(name: str, table: str, key: str, transition: str, sign: str) -> str:
    return f"""
    CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      INSERT INTO {table} ({key}, delta)
      SELECT {key}, {sign}count(*) FROM {transition} GROUP BY {key};
      RETURN NULL;
    END
    $$
    """


DELTA_FUNCTIONS = [
    _function("newsgraph_count_links_added", "entity_count_deltas", "entity_id", "added_links", ""),
    _function(
        "newsgraph_count_links_removed", "entity_count_deltas", "entity_id", "removed_links", "-"
    ),
    _function(
        "newsgraph_count_articles_added", "source_count_deltas", "source_id", "added_articles", ""
    ),
    _function(
        "newsgraph_count_articles_removed",
        "source_count_deltas",
        "source_id",
        "removed_articles",
        "-",
    ),
]

# The functions of 0001, for the downgrade (after folding what is pending).
DIRECT_FUNCTIONS = [
    """
    CREATE OR REPLACE FUNCTION newsgraph_count_links_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE entities e SET article_count = e.article_count + n.count
      FROM (SELECT entity_id, count(*) AS count FROM added_links GROUP BY entity_id) n
      WHERE e.id = n.entity_id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION newsgraph_count_links_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE entities e SET article_count = greatest(e.article_count - n.count, 0)
      FROM (SELECT entity_id, count(*) AS count FROM removed_links GROUP BY entity_id) n
      WHERE e.id = n.entity_id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION newsgraph_count_articles_added() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE sources s SET article_count = s.article_count + n.count
      FROM (SELECT source_id, count(*) AS count FROM added_articles GROUP BY source_id) n
      WHERE s.id = n.source_id;
      RETURN NULL;
    END
    $$
    """,
    """
    CREATE OR REPLACE FUNCTION newsgraph_count_articles_removed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      UPDATE sources s SET article_count = greatest(s.article_count - n.count, 0)
      FROM (SELECT source_id, count(*) AS count FROM removed_articles GROUP BY source_id) n
      WHERE s.id = n.source_id;
      RETURN NULL;
    END
    $$
    """,
]

FOLD = [
    """
    UPDATE entities e SET article_count = greatest(e.article_count + d.delta, 0)
    FROM (SELECT entity_id, sum(delta) AS delta FROM entity_count_deltas GROUP BY entity_id) d
    WHERE e.id = d.entity_id AND d.delta <> 0
    """,
    """
    UPDATE sources s SET article_count = greatest(s.article_count + d.delta, 0)
    FROM (SELECT source_id, sum(delta) AS delta FROM source_count_deltas GROUP BY source_id) d
    WHERE s.id = d.source_id AND d.delta <> 0
    """,
]


def upgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    for statement in (*TABLES, *DELTA_FUNCTIONS):
        op.execute(statement)


def downgrade() -> None:
    op.execute("SET LOCAL lock_timeout = '5s'")
    # Writers wait here until the downgrade commits, so no delta is left behind.
    op.execute("LOCK TABLE entity_count_deltas, source_count_deltas IN EXCLUSIVE MODE")
    for statement in (*FOLD, *DIRECT_FUNCTIONS):
        op.execute(statement)
    op.execute("DROP TABLE entity_count_deltas, source_count_deltas")
