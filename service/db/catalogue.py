"""The entity catalogue as the entity linker reads it: every name and alias, and a version.

`fetch_surfaces` reads the whole catalogue, a page of entities per statement (a million rows
take seconds, so callers do it rarely); `fetch_catalogue_version` is the cheap check that
tells them when to. The version (entity count, latest `updated_at`, alias count) changes when
an entity is added, removed or renamed or an alias added or removed. It misses what leaves all
three equal: an alias replaced by another between two checks, or a rename committed by a
transaction that started before the latest update already seen. Article counts (popularity)
change with every ingest and are deliberately not part of it. The version query scans both
tables; for catalogues of millions a version row kept by triggers would make it O(1).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Final

from service.db.pool import Database

__all__ = [
    "SELECT_CATALOGUE_VERSION",
    "SELECT_MAX_ENTITY_ID",
    "SELECT_SURFACES",
    "SURFACES_PAGE",
    "CatalogueVersion",
    "SurfaceRecord",
    "fetch_catalogue_version",
    "fetch_surfaces",
]


@dataclass(frozen=True, slots=True)
class SurfaceRecord:
    """One name or alias of a catalogue entity, with the entity's kind and article count."""

    entity_id: int
    text: str
    kind: str
    article_count: int


# (entity count, latest entity update, alias count)
CatalogueVersion = tuple[int, datetime | None, int]

# One page: the names and aliases of the entities with ids in ($1, $2]; both halves are
# range scans of a primary key.
SELECT_SURFACES: Final = """
SELECT e.id AS entity_id, e.name AS text, e.kind, e.article_count
FROM entities e WHERE e.id > $1 AND e.id <= $2
UNION ALL
SELECT a.entity_id, a.alias, e.kind, e.article_count
FROM entity_aliases a JOIN entities e ON e.id = a.entity_id
WHERE a.entity_id > $1 AND a.entity_id <= $2
"""

SELECT_MAX_ENTITY_ID: Final = "SELECT coalesce(max(id), 0) FROM entities"

SELECT_CATALOGUE_VERSION: Final = """
SELECT (SELECT count(*) FROM entities) AS entities,
       (SELECT max(updated_at) FROM entities) AS updated_at,
       (SELECT count(*) FROM entity_aliases) AS aliases
"""

SURFACES_PAGE: Final = 20_000


async def fetch_surfaces(db: Database, *, page: int = SURFACES_PAGE) -> list[SurfaceRecord]:
    """Every entity name and alias, read `page` entities at a time.

    Pages keep each statement, and each stretch of decoding on the event loop, short; they are
    not one snapshot, which the version read before them makes harmless (a change made while
    reading shows as a new version at the next check).
    """
    last_id: int = await db.fetchval(SELECT_MAX_ENTITY_ID)
    records: list[SurfaceRecord] = []
    for low in range(0, last_id, page):
        rows = await db.fetch(SELECT_SURFACES, low, low + page)
        records.extend(SurfaceRecord(*row) for row in rows)
    return records


async def fetch_catalogue_version(db: Database) -> CatalogueVersion:
    """A value that changes when the catalogue's names or aliases change."""
    row = await db.fetchrow(SELECT_CATALOGUE_VERSION)
    assert row is not None  # an aggregate without GROUP BY always returns one row
    return row["entities"], row["updated_at"], row["aliases"]
