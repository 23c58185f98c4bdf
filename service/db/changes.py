"""The change feed: every article's latest change, in the order changes were committed.

Numbers come from `article_change_seq`, taken at commit under a lock (migration 0004 says
why), so every change numbered below one a reader sees is visible to it too: a mirror that
asks for `seq > last` never misses one. One row per article: an article changed twice since
the last poll is listed once, at its latest number.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

from service.db.articles import ARTICLE_COLUMNS
from service.db.pool import Database
from service.db.records import ArticleRecord, ChangeRecord, TombstoneRecord

__all__ = ["TOMBSTONE_COLUMNS", "fetch_changes", "fetch_tombstones", "tombstone_record"]

TOMBSTONE_COLUMNS: Final = """
    t.article_id AS t_article_id, t.source_id AS t_source_id, t.url AS t_url,
    t.canonical_url AS t_canonical_url, t.urls AS t_urls, t.reason AS t_reason,
    t.removed_at AS t_removed_at, t.restored_at AS t_restored_at"""

# Without a cursor, `since` (a time) finds the first change made at or after it; changed_at
# grows with seq (both are taken at commit, under the same lock).
SELECT_CHANGES: Final = f"""
SELECT c.seq AS c_seq, c.kind AS c_kind, c.article_id AS c_article_id,
       c.changed_at AS c_changed_at, {ARTICLE_COLUMNS}, {TOMBSTONE_COLUMNS}
FROM article_changes c
LEFT JOIN articles a ON a.id = c.article_id
LEFT JOIN article_tombstones t ON t.article_id = c.article_id AND c.kind = 'REMOVED'
WHERE c.seq > CASE
    WHEN $1::bigint IS NOT NULL THEN $1::bigint
    WHEN $2::timestamptz IS NULL THEN 0
    ELSE coalesce(
        (SELECT x.seq - 1 FROM article_changes x WHERE x.changed_at >= $2::timestamptz
         ORDER BY x.changed_at, x.seq LIMIT 1),
        9223372036854775807)
    END
ORDER BY c.seq
LIMIT $3
"""

SELECT_TOMBSTONES: Final = f"""
SELECT {TOMBSTONE_COLUMNS} FROM article_tombstones t WHERE t.article_id = ANY($1::bigint[])
"""

_ARTICLE_FIELDS: Final = ArticleRecord.__slots__


def tombstone_record(row: Any) -> TombstoneRecord | None:
    """The tombstone in a row selected with TOMBSTONE_COLUMNS (None when it has none)."""
    if row["t_article_id"] is None:
        return None
    return TombstoneRecord(
        article_id=row["t_article_id"],
        source_id=row["t_source_id"],
        url=row["t_url"],
        canonical_url=row["t_canonical_url"],
        urls=list(row["t_urls"]),
        reason=row["t_reason"],
        removed_at=row["t_removed_at"],
        restored_at=row["t_restored_at"],
    )


async def fetch_changes(
    db: Database, *, after: int | None, since: datetime | None, limit: int
) -> list[ChangeRecord]:
    """Up to `limit` changes after seq `after` (else from the time `since`, else the start)."""
    rows = await db.fetch(SELECT_CHANGES, after, since, limit)
    changes = []
    for row in rows:
        article = None
        if row["id"] is not None:
            article = ArticleRecord(**{name: row[name] for name in _ARTICLE_FIELDS})
        changes.append(
            ChangeRecord(
                seq=row["c_seq"],
                kind=row["c_kind"],
                article_id=row["c_article_id"],
                changed_at=row["c_changed_at"],
                article=article,
                tombstone=tombstone_record(row),
            )
        )
    return changes


async def fetch_tombstones(db: Database, article_ids: Sequence[int]) -> dict[int, TombstoneRecord]:
    rows = await db.fetch(SELECT_TOMBSTONES, list(article_ids))
    found = {}
    for row in rows:
        record = tombstone_record(row)
        assert record is not None
        found[record.article_id] = record
    return found
