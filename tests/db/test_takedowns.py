"""Takedowns: the article and its links go, counters follow, a tombstone and its URLs stay."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest
import pytest_asyncio

from service.config import Settings
from service.db.changes import fetch_changes
from service.db.counters import fold_counts
from service.db.pool import Database, open_database
from service.db.takedowns import remove_articles, resolve_article_urls, restore_urls
from service.ingest.pipeline import ingest_batch
from service.related.indexer import drain
from tests.access_support import make_key
from tests.factories import article_input
from tests.feed_support import scratch_database


@pytest_asyncio.fixture(scope="module")
async def takedown_url(server_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url, "takedowns") as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def tdb(takedown_url: str, settings: Settings) -> AsyncIterator[Database]:
    async with open_database(settings.with_database(takedown_url)) as database:
        yield database


async def test_removal_deletes_content_and_keeps_a_tombstone(tdb: Database) -> None:
    item = article_input(
        url="https://takedown.example/a?utm_source=x",
        canonicalUrl="https://takedown.example/a-canonical",
        entities=[{"name": "Takedown Person", "kind": "PERSON"}],
    )
    [stored] = await ingest_batch(tdb, [item])
    article_id = stored.article_id
    assert article_id is not None
    await fold_counts(tdb)  # counters follow writes by a fold (service.db.counters)
    source_before = await tdb.fetchval(
        "SELECT article_count FROM sources WHERE domain = 'factory.example'"
    )
    entity_before = await tdb.fetchval(
        "SELECT article_count FROM entities WHERE name = 'Takedown Person'"
    )
    outcome = await remove_articles(tdb, [article_id], "court order 12", removed_by=None)
    assert outcome[article_id].status == "REMOVED"
    tombstone = outcome[article_id].tombstone
    assert tombstone is not None
    assert tombstone.reason == "court order 12"
    assert tombstone.canonical_url == "https://takedown.example/a-canonical"
    assert set(tombstone.urls) == {
        "https://takedown.example/a",
        "https://takedown.example/a-canonical",
    }
    assert await tdb.fetchval("SELECT count(*) FROM articles WHERE id = $1", article_id) == 0
    links = "SELECT count(*) FROM article_entities WHERE article_id = $1"
    assert await tdb.fetchval(links, article_id) == 0
    await fold_counts(tdb)
    assert (
        await tdb.fetchval("SELECT article_count FROM sources WHERE domain = 'factory.example'")
        == source_before - 1
    )
    assert (
        await tdb.fetchval("SELECT article_count FROM entities WHERE name = 'Takedown Person'")
        == entity_before - 1
    )
    # Any of its URLs still names it (as removed), and the feed says REMOVED.
    assert await resolve_article_urls(tdb, ["https://takedown.example/a"]) == {
        "https://takedown.example/a": article_id
    }
    last = (await fetch_changes(tdb, after=None, since=None, limit=100_000))[-1]
    assert (last.article_id, last.kind, last.article) == (article_id, "REMOVED", None)
    assert last.tombstone == tombstone
    again = await remove_articles(tdb, [article_id, 10**12], "again", removed_by=None)
    assert again[article_id].status == "ALREADY_REMOVED"
    assert again[10**12].status == "NOT_FOUND"


async def test_removal_deletes_the_related_stories_postings_and_band_keys(tdb: Database) -> None:
    # Migration 0012: no foreign key cascades to these tables; a trigger on articles does.
    body = "Flooding closed the coastal road near the harbour for the third day running. " * 8
    gone, kept = await ingest_batch(
        tdb,
        [
            article_input(url="https://takedown.example/flood-1", body=body),
            article_input(url="https://takedown.example/flood-2", body=body + " Updated."),
        ],
    )
    assert gone.article_id is not None
    assert kept.article_id is not None
    await drain(tdb)
    gone_rows = await _postings_and_bands(tdb, gone.article_id)
    assert gone_rows[0] > 0
    assert gone_rows[1] > 0
    kept_rows = await _postings_and_bands(tdb, kept.article_id)
    await remove_articles(tdb, [gone.article_id], "test", removed_by=None)
    assert await _postings_and_bands(tdb, gone.article_id) == (0, 0)
    assert await _postings_and_bands(tdb, kept.article_id) == kept_rows


async def _postings_and_bands(db: Database, article_id: int) -> tuple[int, int]:
    terms = "SELECT count(*) FROM article_terms WHERE article_id = $1"
    bands = "SELECT count(*) FROM article_bands WHERE article_id = $1"
    return await db.fetchval(terms, article_id), await db.fetchval(bands, article_id)


async def test_a_removed_url_is_refused_until_restored(tdb: Database) -> None:
    item = article_input(url="https://takedown.example/b", canonicalUrl="https://amp.example/b")
    [stored] = await ingest_batch(tdb, [item])
    assert stored.article_id is not None
    await remove_articles(tdb, [stored.article_id], "defamation", removed_by=None)
    for attempt in (item, article_input(url="https://amp.example/b"), {**item, "title": "New"}):
        refused, fine = await ingest_batch(tdb, [attempt, article_input()])
        assert (refused.status, fine.status) == ("REJECTED", "CREATED")
        assert [e.code for e in refused.errors] == ["REMOVED"]
    [tombstone] = await restore_urls(tdb, ["https://amp.example/b"])
    assert tombstone.restored_at is not None
    [again] = await ingest_batch(tdb, [item])
    assert again.status == "CREATED"
    assert again.article_id != stored.article_id


async def test_an_ingest_key_removes_only_its_own_articles(
    tdb: Database, settings: Settings
) -> None:
    _, own = await make_key(tdb, settings, "ingest", sources=("factory.example",))
    _, other = await make_key(tdb, settings, "ingest", sources=("factory.example",))
    [mine] = await ingest_batch(tdb, [article_input()], writer=own)
    [theirs] = await ingest_batch(tdb, [article_input()], writer=other)
    assert mine.article_id is not None
    assert theirs.article_id is not None
    outcome = await remove_articles(
        tdb,
        [mine.article_id, theirs.article_id],
        "withdrawn",
        removed_by=own.key_id,
        owner=own.key_id,
    )
    assert outcome[mine.article_id].status == "REMOVED"
    assert outcome[theirs.article_id].status == "FORBIDDEN"
    assert await tdb.fetchval("SELECT count(*) FROM articles WHERE id = $1", theirs.article_id)


async def test_an_ingest_that_waited_on_a_takedown_is_not_stored(takedown_url: str) -> None:
    # The ingest inserts while the takedown of the same URL commits: numbering at commit
    # refuses it (a serialisation failure: the pipeline retries and then reports REMOVED).
    ingest, takedown = await asyncpg.connect(takedown_url), await asyncpg.connect(takedown_url)
    try:
        source = await ingest.fetchval(
            "INSERT INTO sources (domain, name) VALUES ('race.example', 'Race') RETURNING id"
        )
        tx = ingest.transaction()
        await tx.start()
        await ingest.execute(
            "INSERT INTO articles (source_id, url, canonical_url, title, published_at, "
            "content_hash) VALUES ($1, $2, $2, 'Race', now(), '\\x00')",
            source,
            "https://race.example/story",
        )
        async with asyncio.timeout(10), takedown.transaction():
            await takedown.execute(
                "INSERT INTO article_tombstones (article_id, source_id, url, canonical_url, "
                "urls, reason) VALUES (-1, $1, $2, $2, ARRAY[$2], 'race')",
                source,
                "https://race.example/story",
            )
            await takedown.execute(
                "INSERT INTO removed_urls (url, article_id) VALUES ($1, -1)",
                "https://race.example/story",
            )
        with pytest.raises(asyncpg.exceptions.SerializationError):
            await asyncio.wait_for(tx.commit(), 10)
    finally:
        await ingest.close()
        await takedown.close()
