"""Source (publisher) reads: lookups and the searchable, paginated list."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from service.db.entities import like_pattern
from service.db.pool import Database
from service.db.records import SourceRecord

__all__ = ["fetch_source_by_domain", "fetch_sources_by_ids", "list_sources"]

SOURCE_COLUMNS: Final = (
    "s.id, s.domain, s.name, s.country, s.language, s.article_count, s.is_wire_service"
)

SELECT_SOURCES_BY_IDS: Final = (
    f"SELECT {SOURCE_COLUMNS} FROM sources s WHERE s.id = ANY($1::bigint[])"
)

SELECT_SOURCE_BY_DOMAIN: Final = f"SELECT {SOURCE_COLUMNS} FROM sources s WHERE s.domain = $1"


async def fetch_sources_by_ids(db: Database, ids: Sequence[int]) -> dict[int, SourceRecord]:
    rows = await db.fetch(SELECT_SOURCES_BY_IDS, list(ids))
    return {row["id"]: SourceRecord(**row) for row in rows}


async def fetch_source_by_domain(db: Database, domain: str) -> SourceRecord | None:
    row = await db.fetchrow(SELECT_SOURCE_BY_DOMAIN, domain)
    return SourceRecord(**row) if row is not None else None


async def list_sources(
    db: Database, *, search: str | None, after: tuple[str, int] | None, limit: int
) -> list[SourceRecord]:
    """Sources by name (then id), optionally those whose name or domain contains `search`."""
    params: list[object] = []

    def p(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    where = []
    if search is not None:
        where.append(
            f"s.search_key LIKE '%' || newsgraph_search_key({p(like_pattern(search))}) || '%'"
        )
    if after is not None:
        where.append(f"(s.name, s.id) > ({p(after[0])}, {p(after[1])})")
    sql = (
        f"SELECT {SOURCE_COLUMNS} FROM sources s WHERE {' AND '.join(where) or 'true'} "
        f"ORDER BY s.name, s.id LIMIT {p(limit)}"
    )
    return [SourceRecord(**row) for row in await db.fetch(sql, *params)]
