from __future__ import annotations

import asyncpg
import pytest

from service.db.catalogue import fetch_catalogue_version, fetch_surfaces
from service.db.pool import Database
from service.errors import ServiceUnavailable
from service.ingest.catalogue import LinkerCache
from service.ingest.linking import Linker
from service.ingest.pipeline import load_catalogue


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class BrokenDatabase(Database):
    """Answers no statement, as when the database is down."""

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        raise ServiceUnavailable("The database is unavailable; retry shortly.")


def linked(linker: Linker, text: str) -> set[int]:
    return {m.entity_id for m in linker.link(text, None, None)}


async def test_surfaces_are_names_and_aliases_read_page_by_page(write_db: Database) -> None:
    ids = await load_catalogue(
        write_db,
        [
            {"name": "Zyxoria Holdings", "kind": "ORGANIZATION", "aliases": ["Zyxoria", "ZXH"]},
            {"name": "Quarnel Vantiss", "kind": "PERSON"},
        ],
    )
    records = await fetch_surfaces(write_db, page=1)
    mine = {(r.entity_id, r.text, r.kind, r.article_count) for r in records if r.entity_id in ids}
    assert mine == {
        (ids[0], "Zyxoria Holdings", "ORGANIZATION", 0),
        (ids[0], "Zyxoria", "ORGANIZATION", 0),
        (ids[0], "ZXH", "ORGANIZATION", 0),
        (ids[1], "Quarnel Vantiss", "PERSON", 0),
    }
    assert sorted(records, key=repr) == sorted(await fetch_surfaces(write_db), key=repr)


async def test_the_version_changes_with_entities_and_aliases(write_db: Database) -> None:
    before = await fetch_catalogue_version(write_db)
    assert await fetch_catalogue_version(write_db) == before
    await load_catalogue(write_db, [{"name": "Zyxoria Holdings", "kind": "ORGANIZATION"}])
    with_entity = await fetch_catalogue_version(write_db)
    assert with_entity != before
    await load_catalogue(
        write_db, [{"name": "Zyxoria Holdings", "kind": "ORGANIZATION", "aliases": ["Zyxoria"]}]
    )
    assert await fetch_catalogue_version(write_db) != with_entity


async def test_linker_cache_builds_from_the_database_and_picks_up_changes(
    write_db: Database,
) -> None:
    [zyxoria] = await load_catalogue(
        write_db, [{"name": "Zyxoria Holdings", "kind": "ORGANIZATION", "aliases": ["Zyxoria"]}]
    )
    clock = Clock()
    cache = LinkerCache(check_interval=5, clock=clock)
    linker = await cache.get(write_db)
    assert linked(linker, "Zyxoria shares fell") == {zyxoria}
    assert cache.version == await fetch_catalogue_version(write_db)

    [quarnel] = await load_catalogue(write_db, [{"name": "Quarnel Vantiss", "kind": "PERSON"}])
    # Within the interval nobody looks at the database.
    assert await cache.get(write_db) is linker
    await cache.wait()
    assert await cache.get(write_db) is linker

    # invalidate() makes the next get start a check; it still answers with the old linker.
    cache.invalidate()
    assert await cache.get(write_db) is linker
    await cache.wait()
    rebuilt = await cache.get(write_db)
    assert rebuilt is not linker
    assert linked(rebuilt, "Quarnel Vantiss met Zyxoria") == {quarnel, zyxoria}

    # After the interval a check runs by itself; an unchanged catalogue keeps the linker.
    clock.now += 5
    assert await cache.get(write_db) is rebuilt
    await cache.wait()
    assert await cache.get(write_db) is rebuilt
    assert await cache.refresh(write_db) is False


async def test_a_failed_check_keeps_the_current_linker(
    write_db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    await load_catalogue(write_db, [{"name": "Zyxoria Holdings", "kind": "ORGANIZATION"}])
    cache = LinkerCache(check_interval=0)
    linker = await cache.get(write_db)
    broken = BrokenDatabase(write_db._primary)
    assert await cache.get(broken) is linker
    await cache.wait()
    assert "could not refresh the entity linker" in caplog.text
    assert await cache.get(broken) is linker
    await cache.close()


async def test_the_first_build_reports_a_failure_to_the_caller(write_db: Database) -> None:
    cache = LinkerCache()
    with pytest.raises(ServiceUnavailable):
        await cache.get(BrokenDatabase(write_db._primary))
