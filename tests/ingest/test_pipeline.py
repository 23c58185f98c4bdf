from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from service.config import Settings
from service.db.catalogue import fetch_surfaces
from service.db.counters import fold_counts
from service.db.pool import Database
from service.db.writes import live_entities, merge_entities
from service.ingest.catalogue import build_linker
from service.ingest.pipeline import ingest_batch, load_catalogue
from tests.factories import article_input
from tests.feed_support import scratch_pool


async def test_reingest_is_unchanged_and_an_edit_updates_without_duplicating(
    write_db: Database,
) -> None:
    item = article_input(url="https://factory.example/a?utm_source=feed")
    [first] = await ingest_batch(write_db, [item])
    assert first.status == "CREATED"
    [again] = await ingest_batch(write_db, [dict(item, url="https://FACTORY.example/a/#top")])
    assert (again.status, again.article_id) == ("UNCHANGED", first.article_id)
    [edited] = await ingest_batch(write_db, [dict(item, title="A better headline")])
    assert (edited.status, edited.article_id) == ("UPDATED", first.article_id)
    count = await write_db.fetchval(
        "SELECT count(*) FROM articles WHERE canonical_url = 'https://factory.example/a'"
    )
    title = await write_db.fetchval("SELECT title FROM articles WHERE id = $1", first.article_id)
    assert (count, title) == (1, "A better headline")


async def test_invalid_items_are_rejected_alone_with_paths(write_db: Database) -> None:
    results = await ingest_batch(
        write_db,
        [
            article_input(),
            {"url": "ftp://nope", "title": ""},
            article_input(publishedAt="last tuesday"),
            "not an object",
        ],
    )
    assert [r.status for r in results] == ["CREATED", "REJECTED", "REJECTED", "REJECTED"]
    assert {e.path for e in results[1].errors} == {"articles[1].url", "articles[1].title"}
    assert results[2].errors[0].path == "articles[2].publishedAt"
    assert "RFC 3339" in results[2].errors[0].message
    assert results[3].errors[0].path == "articles[3]"


async def test_repeats_in_one_batch_are_stored_once(write_db: Database) -> None:
    item = article_input()
    results = await ingest_batch(write_db, [item, dict(item, title="Later copy")])
    assert results[0].article_id == results[1].article_id
    assert (
        await write_db.fetchval("SELECT title FROM articles WHERE id = $1", results[0].article_id)
        == "Later copy"
    )


async def test_missing_date_is_the_ingest_time_flagged_estimated(write_db: Database) -> None:
    [result] = await ingest_batch(write_db, [article_input(publishedAt=None)])
    row = await write_db.fetchrow(
        "SELECT published_at_estimated, now() - published_at < interval '1 minute' AS recent "
        "FROM articles WHERE id = $1",
        result.article_id,
    )
    assert row is not None
    assert (row["published_at_estimated"], row["recent"]) == (True, True)


async def test_entities_link_by_wikidata_id_name_or_alias_and_counters_follow(
    write_db: Database,
) -> None:
    [entity_id] = await load_catalogue(
        write_db,
        [
            {
                "name": "Testa Personsen",
                "kind": "PERSON",
                "wikidataId": "Q99999991",
                "aliases": ["T. P."],
            }
        ],
    )
    results = await ingest_batch(
        write_db,
        [
            article_input(
                entities=[{"name": "Testa Personsen", "kind": "PERSON", "salience": 0.9}]
            ),
            article_input(entities=[{"name": "t. p.", "kind": "PERSON", "salience": 0.4}]),
            article_input(
                entities=[{"name": "Someone", "kind": "PERSON", "wikidataId": "Q99999991"}]
            ),
        ],
    )
    linked = await write_db.fetch(
        "SELECT article_id FROM article_entities WHERE entity_id = $1 ORDER BY article_id",
        entity_id,
    )
    assert [r["article_id"] for r in linked] == [r.article_id for r in results]
    await fold_counts(write_db)  # counters follow writes by a fold (service.db.counters)
    assert (
        await write_db.fetchval("SELECT article_count FROM entities WHERE id = $1", entity_id) == 3
    )
    source_count = await write_db.fetchval(
        "SELECT article_count FROM sources WHERE domain = 'factory.example'"
    )
    assert source_count >= 3


async def test_unknown_entities_are_created_and_links_replaced_on_update(
    write_db: Database,
) -> None:
    item = article_input(
        entities=[{"name": "Brand New Org", "kind": "ORGANIZATION", "salience": 0.7}]
    )
    [created] = await ingest_batch(write_db, [item])
    entity_id = await write_db.fetchval("SELECT id FROM entities WHERE slug = 'brand-new-org'")
    assert entity_id is not None
    [updated] = await ingest_batch(write_db, [dict(item, entities=[], title="No entities now")])
    assert updated.status == "UPDATED"
    assert (
        await write_db.fetchval(
            "SELECT count(*) FROM article_entities WHERE article_id = $1", created.article_id
        )
        == 0
    )
    await fold_counts(write_db)
    assert (
        await write_db.fetchval("SELECT article_count FROM entities WHERE id = $1", entity_id) == 0
    )


async def test_a_new_date_moves_the_article_in_entity_feeds(write_db: Database) -> None:
    item = article_input(entities=[{"name": "Dated Thing", "kind": "OTHER", "salience": 0.5}])
    [result] = await ingest_batch(write_db, [item])
    await ingest_batch(write_db, [dict(item, publishedAt="2026-06-01T00:00:00Z")])
    link_time = await write_db.fetchval(
        "SELECT published_at = '2026-06-01T00:00:00Z' FROM article_entities WHERE article_id = $1",
        result.article_id,
    )
    assert link_time is True


async def two_entities(db: Database) -> tuple[int, int]:
    """Two catalogue entities, the first to survive a merge of the second."""
    keep, gone = await load_catalogue(
        db,
        [
            {"name": "Zyxoria Holdings", "kind": "ORGANIZATION"},
            {"name": "Quarnel Vantiss", "kind": "PERSON"},
        ],
    )
    return keep, gone


async def test_a_linker_built_before_an_entity_merge_links_the_survivor(
    write_db: Database,
) -> None:
    # Until a process rebuilds its linker, it still finds merged names under their old ids:
    # the article is stored all the same, linked to the entity they were merged into.
    keep, gone = await two_entities(write_db)
    before_merge = build_linker(await fetch_surfaces(write_db))
    async with write_db.transaction() as w:
        assert await merge_entities(w, keep, [gone])
    [result] = await ingest_batch(
        write_db,
        [
            article_input(
                title="Quarnel Vantiss and Zyxoria Holdings",
                body="Quarnel Vantiss said Zyxoria Holdings would grow. Quarnel Vantiss left.",
            )
        ],
        linker=before_merge,
    )
    assert result.status == "CREATED"
    links = await write_db.fetch(
        "SELECT entity_id, mention_count FROM article_entities WHERE article_id = $1",
        result.article_id,
    )
    # One link, with the mentions of both names.
    assert [(r["entity_id"], r["mention_count"]) for r in links] == [(keep, 5)]
    assert not await write_db.fetchval(
        "SELECT count(*) FROM article_entities WHERE entity_id = $1", gone
    )


async def test_a_merge_moves_links_and_leaves_none_to_the_merged_entity(
    write_db: Database,
) -> None:
    keep, gone = await two_entities(write_db)
    linker = build_linker(await fetch_surfaces(write_db))
    both, one = await ingest_batch(
        write_db,
        [
            article_input(title="Quarnel Vantiss meets Zyxoria Holdings"),
            article_input(title="Quarnel Vantiss alone"),
        ],
        linker=linker,
    )
    async with write_db.transaction() as w:
        assert await merge_entities(w, keep, [gone])
    rows = await write_db.fetch(
        "SELECT article_id, entity_id, mention_count FROM article_entities "
        "WHERE article_id = ANY($1::bigint[]) ORDER BY article_id",
        [both.article_id, one.article_id],
    )
    assert [tuple(r) for r in rows] == [(both.article_id, keep, 2), (one.article_id, keep, 1)]


@pytest_asyncio.fixture(scope="module")
async def pool_db(server_url: str, settings: Settings) -> AsyncIterator[Database]:
    """A pool on a scratch database: transactions of several connections, committed."""
    async with scratch_pool(server_url, "merges", settings) as (_, database):
        yield database


async def test_entities_being_linked_cannot_be_merged_away_until_the_links_commit(
    pool_db: Database,
) -> None:
    keep, gone = await two_entities(pool_db)
    async with pool_db.transaction() as linking:
        assert await live_entities(linking, [gone, 10**12]) == {gone: gone}
        async with asyncio.timeout(10), pool_db.transaction() as merging:
            await merging.execute("SET LOCAL lock_timeout = '200ms'")
            with pytest.raises(asyncpg.LockNotAvailableError):
                await merge_entities(merging, keep, [gone])
    async with pool_db.transaction() as w:
        assert await merge_entities(w, keep, [gone])
        assert await live_entities(w, [gone, keep]) == {gone: keep, keep: keep}


async def test_articles_whose_links_a_merge_moves_cannot_be_deleted_until_it_commits(
    pool_db: Database,
) -> None:
    # Without key checks on the links, the merge itself keeps a takedown from deleting an
    # article between reading its links and writing them to the survivor.
    keep, gone = await load_catalogue(
        pool_db,
        [
            {"name": "Vellmora Shipping", "kind": "ORGANIZATION"},
            {"name": "Tasquen Ordby", "kind": "PERSON"},
        ],
    )
    linker = build_linker(await fetch_surfaces(pool_db))
    [article] = await ingest_batch(
        pool_db, [article_input(title="Tasquen Ordby speaks")], linker=linker
    )
    async with pool_db.transaction() as merging:
        assert await merge_entities(merging, keep, [gone])
        async with asyncio.timeout(10), pool_db.transaction() as takedown:
            with pytest.raises(asyncpg.LockNotAvailableError):
                await takedown.execute(
                    "SELECT id FROM articles WHERE id = $1 FOR UPDATE NOWAIT", article.article_id
                )
