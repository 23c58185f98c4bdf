"""SQL of stored related-stories lists and their refresh log (migration 0008).

A list is served only while no row for its article waits in `related_refresh`; triggers on
`article_signals` append those rows; a refresher (service/related/lists.py) claims some
(SKIP LOCKED), computes their lists, and deletes the rows in the transaction that stores them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import timedelta
from typing import Final

import asyncpg

from service.db.articles import ARTICLE_COLUMNS
from service.db.pool import Database, Writer
from service.db.records import ArticleRecord, SourceRecord

__all__ = [
    "Claim",
    "ListRow",
    "StoredLists",
    "claim",
    "enqueue_entrants",
    "enqueue_leaving",
    "fetch_item_ids",
    "fetch_listed_articles",
    "fetch_valid_lists",
    "queue_depth",
    "release",
    "store_lists",
]

_ARTICLE_FIELDS: Final = tuple(f.name for f in fields(ArticleRecord))
_SOURCE_FIELDS: Final = tuple(f.name for f in fields(SourceRecord))
SOURCE_ALIASES: Final = ", ".join(f"s.{name} AS s_{name}" for name in _SOURCE_FIELDS)
# One row per listed article (among the first $2), with its source, so that a page showing
# the list needs no further statement for them; the list's JSON comes on its first row (an
# empty list: one row without article). An article gone since the list was stored (taken
# down) comes back without columns.
SELECT_VALID_LISTS: Final = f"""
SELECT l.article_id AS parent_id, CASE WHEN coalesce(x.ord, 1) = 1 THEN l.items::text END AS items,
    {ARTICLE_COLUMNS.strip()},
    {SOURCE_ALIASES}
FROM related_lists l
LEFT JOIN LATERAL unnest(l.item_ids[1:$2]) WITH ORDINALITY AS x(id, ord) ON true
LEFT JOIN articles a ON a.id = x.id
LEFT JOIN sources s ON s.id = a.source_id
WHERE l.article_id = ANY($1::bigint[])
  AND NOT EXISTS (SELECT 1 FROM related_refresh q WHERE q.article_id = l.article_id)
"""


@dataclass(frozen=True, slots=True)
class StoredLists:
    lists: dict[int, str]  # article id -> its valid stored list (JSON text)
    articles: dict[int, ArticleRecord]  # the first listed articles, read along
    sources: dict[int, SourceRecord]  # their sources


# The articles of a list ranked online, with their sources: one statement, as a stored list's.
SELECT_LISTED_ARTICLES: Final = f"""
SELECT {ARTICLE_COLUMNS.strip()},
    {SOURCE_ALIASES}
FROM articles a
LEFT JOIN sources s ON s.id = a.source_id
WHERE a.id = ANY($1::bigint[])
"""


def _take_article(found: StoredLists, row: asyncpg.Record) -> None:
    """The row's article and its source (`SELECT_VALID_LISTS`'s or `SELECT_LISTED_ARTICLES`')."""
    article = ArticleRecord(**{name: row[name] for name in _ARTICLE_FIELDS})
    found.articles[article.id] = article
    found.sources[article.source_id] = SourceRecord(
        **{name: row[f"s_{name}"] for name in _SOURCE_FIELDS}
    )


async def fetch_valid_lists(db: Database, ids: Sequence[int], first: int) -> StoredLists:
    """The stored lists of those articles that have a valid one, with their first `first`
    listed articles and those articles' sources."""
    found = StoredLists({}, {}, {})
    for row in await db.fetch(SELECT_VALID_LISTS, list(ids), first):
        if row["items"] is not None:
            found.lists[row["parent_id"]] = row["items"]
        if row["id"] is not None:
            _take_article(found, row)
    return found


async def fetch_listed_articles(db: Database, ids: Sequence[int]) -> StoredLists:
    """These articles and their sources (`lists` stays empty); taken-down ones are missing."""
    found = StoredLists({}, {}, {})
    for row in await db.fetch(SELECT_LISTED_ARTICLES, sorted(set(ids))):
        _take_article(found, row)
    return found


# Oldest rows first; rows another refresher holds are skipped, never waited for, and a claim
# older than CLAIM_TIMEOUT (its refresher died) is taken over.
CLAIM_TIMEOUT: Final = timedelta(minutes=2)
# The other free rows of the picked articles come along: one ranking answers them all (they
# are committed, so the ranking, which starts after the claim, sees what they announce).
# `= ANY(ARRAY(...))` rather than `IN (SELECT ...)`: the planner cannot tell how many rows
# an IN over a CTE matches and guessed half the log, so every claim read the whole log twice
# (sequential scans, hash joins), its cost growing with the backlog: 78 ms to claim and
# release 100 rows of a 200,000-row log, 21-44 ms over 100,000. By index: 7-14 ms, flat
# (`bench/refresh_claims.py`).
CLAIM: Final = """
WITH picked AS (
    SELECT seq, article_id FROM related_refresh
    WHERE claimed_at IS NULL OR claimed_at < now() - $2::interval
    ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED
), same AS (
    SELECT r.seq FROM related_refresh r
    WHERE r.article_id = ANY(ARRAY(SELECT article_id FROM picked))
      AND (r.claimed_at IS NULL OR r.claimed_at < now() - $2::interval)
    FOR UPDATE SKIP LOCKED
)
UPDATE related_refresh SET claimed_at = now()
WHERE seq = ANY(ARRAY(SELECT seq FROM picked UNION SELECT seq FROM same))
RETURNING seq, article_id, cascade, xid::text
"""
# Taken after the claim, before the ranking: every change the claimed rows announce is
# committed, so visible to it (and to the ranking, whose statements start later).
SNAPSHOT: Final = "SELECT pg_current_snapshot()::text"


@dataclass(frozen=True, slots=True)
class Claim:
    seqs: list[int]
    articles: dict[int, bool]  # article id -> whether to cascade (any of its rows says so)
    xids: list[str]  # of the transactions that wrote the rows of cascading articles
    snapshot: str  # what the ranking of these articles will see at least (pg_snapshot)


async def claim(db: Database, limit: int) -> Claim:
    """Mark up to `limit` log rows as taken (committed at once; `release` deletes them)."""
    async with db.transaction() as w:
        rows = await w.fetch(CLAIM, limit, CLAIM_TIMEOUT)
    articles: dict[int, bool] = {}
    for r in rows:
        articles[r["article_id"]] = articles.get(r["article_id"], False) or r["cascade"]
    xids = sorted({r["xid"] for r in rows if r["cascade"]})
    snapshot = str(await db.fetchval(SNAPSHOT)) if rows else ""
    return Claim(sorted(r["seq"] for r in rows), articles, xids, snapshot)


RELEASE: Final = "DELETE FROM related_refresh WHERE seq = ANY($1::bigint[])"


async def release(w: Writer, claimed: Claim) -> None:
    """Delete the claimed rows (in the transaction that stores their lists)."""
    await w.execute(RELEASE, claimed.seqs)


SELECT_ITEM_IDS: Final = """
SELECT article_id, item_ids FROM related_lists WHERE article_id = ANY($1::bigint[])
"""


async def fetch_item_ids(w: Writer, ids: Sequence[int]) -> dict[int, list[int]]:
    """The articles named in the current lists of `ids` (valid or not)."""
    rows = await w.fetch(SELECT_ITEM_IDS, list(ids))
    return {r["article_id"]: list(r["item_ids"]) for r in rows}


@dataclass(frozen=True, slots=True)
class ListRow:
    article_id: int
    items: str  # JSON text
    item_ids: list[int]
    floor: float | None  # the lowest score when the list is full


UPSERT_LISTS: Final = """
INSERT INTO related_lists AS l (article_id, items, item_ids, floor, computed_at, snapshot)
SELECT x.article_id, x.items::json, x.item_ids::bigint[], x.floor, now(), $5::text::pg_snapshot
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::real[])
    AS x(article_id, items, item_ids, floor)
ORDER BY x.article_id
ON CONFLICT (article_id) DO UPDATE SET
    items = EXCLUDED.items, item_ids = EXCLUDED.item_ids, floor = EXCLUDED.floor,
    computed_at = EXCLUDED.computed_at, snapshot = EXCLUDED.snapshot
"""
DELETE_LISTS: Final = "DELETE FROM related_lists WHERE article_id = ANY($1::bigint[])"


async def store_lists(
    w: Writer, rows: Sequence[ListRow], gone: Sequence[int], snapshot: str | None
) -> None:
    """Replace the lists of `rows` (in id order: concurrent refreshers cannot deadlock),
    ranked on `snapshot` or later, and drop those of `gone` (articles without signals: taken
    down, or not indexed)."""
    rows = sorted(rows, key=lambda r: r.article_id)
    if rows:
        await w.execute(
            UPSERT_LISTS,
            [r.article_id for r in rows],
            [r.items for r in rows],
            ["{" + ",".join(map(str, r.item_ids)) + "}" for r in rows],
            [r.floor for r in rows],
            snapshot,
        )
    if gone:
        await w.execute(DELETE_LISTS, sorted(gone))


# A list ranked on a snapshot that sees every change ($xids) already accounts for them
# (migration 0009); a list without a snapshot, or no list, does not. A change of this very
# transaction (one test transaction doing it all) cannot be placed, so it counts as unseen.
_UNSEEN: Final = """NOT coalesce(l.snapshot IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM unnest({xids}::text[]::xid8[]) v
    WHERE NOT pg_visible_in_snapshot(v, l.snapshot) OR v = pg_current_xact_id()), false)"""

# The cascade to the lists an article leaves (or may leave): those that named it.
ENQUEUE_LEAVING: Final = f"""
INSERT INTO related_refresh (article_id, cascade)
SELECT x.id, false
FROM unnest($1::bigint[]) AS x(id)
LEFT JOIN related_lists l ON l.article_id = x.id
WHERE {_UNSEEN.format(xids="$2")}
ORDER BY x.id
"""


async def enqueue_leaving(w: Writer, ids: Sequence[int], xids: Sequence[str]) -> None:
    """Queue the lists of `ids` unless ranked after the changes of `xids` were committed."""
    if ids:
        await w.execute(ENQUEUE_LEAVING, sorted(set(ids)), list(xids))


# A newcomer may enter a neighbour's list when it scores near or above that list's floor
# (relevance is nearly symmetric; the margin covers the rest: feedback, salient entities).
ENQUEUE_ENTRANTS: Final = f"""
INSERT INTO related_refresh (article_id, cascade)
SELECT x.id, false
FROM unnest($1::bigint[], $2::real[]) AS x(id, score)
LEFT JOIN related_lists l ON l.article_id = x.id
WHERE (l.floor IS NULL OR x.score + $3 >= l.floor) AND {_UNSEEN.format(xids="$4")}
ORDER BY x.id
"""


async def enqueue_entrants(
    w: Writer, scores: dict[int, float], margin: float, xids: Sequence[str]
) -> None:
    """Queue the lists that an article scoring `scores[id]` against them might enter, unless
    ranked after the changes of `xids` were committed."""
    if scores:
        ids = sorted(scores)
        await w.execute(ENQUEUE_ENTRANTS, ids, [scores[i] for i in ids], margin, list(xids))


SELECT_DEPTH: Final = "SELECT count(*) FROM related_refresh"


async def queue_depth(db: Database) -> int:
    return int(await db.fetchval(SELECT_DEPTH))
