"""The change feed's numbering: by commit, so `seq > last` never skips a late commit."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
import pytest_asyncio

from service.config import Settings
from service.db.changes import fetch_changes
from service.db.pool import Database, open_database
from service.ingest.pipeline import ingest_batch
from tests.factories import article_input
from tests.feed_support import scratch_database

INSERT_ARTICLE = """
INSERT INTO articles (source_id, url, canonical_url, title, published_at, content_hash)
VALUES ($1, $2, $2, 'Raw insert', now(), '\\x00') RETURNING id
"""


@pytest_asyncio.fixture(scope="module")
async def feed_url(server_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url, "changes") as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def feed_db(feed_url: str, settings: Settings) -> AsyncIterator[Database]:
    async with open_database(settings.with_database(feed_url)) as database:
        yield database


async def _source(conn: Any, domain: str) -> int:
    # A source per transaction: inserts of one source serialise on its article counter.
    return int(
        await conn.fetchval(
            "INSERT INTO sources (domain, name) VALUES ($1, 'Raw') "
            "ON CONFLICT (domain) DO UPDATE SET name = EXCLUDED.name RETURNING id",
            domain,
        )
    )


async def _head(db: Database) -> int:
    rows = await fetch_changes(db, after=None, since=None, limit=1_000_000)
    return rows[-1].seq if rows else 0


async def test_a_late_commit_is_numbered_after_what_was_already_served(
    feed_url: str, feed_db: Database
) -> None:
    slow, fast = await asyncpg.connect(feed_url), await asyncpg.connect(feed_url)
    try:
        slow_source = await _source(slow, "slow.example")
        fast_source = await _source(slow, "fast.example")
        start = await _head(feed_db)
        slow_tx = slow.transaction()
        await slow_tx.start()
        # The slow transaction writes first (a sequence taken now would be the smaller one)...
        slow_id = await slow.fetchval(INSERT_ARTICLE, slow_source, "https://raw.example/slow")
        async with asyncio.timeout(10), fast.transaction():
            fast_id = await fast.fetchval(INSERT_ARTICLE, fast_source, "https://raw.example/fast")
        # ...the fast one commits first and a poller reads it...
        served = await fetch_changes(feed_db, after=start, since=None, limit=100)
        assert [(c.article_id, c.kind) for c in served] == [(fast_id, "CREATED")]
        # ...then the slow one commits: it comes after what was served, so the poller gets it.
        await slow_tx.commit()
        later = await fetch_changes(feed_db, after=served[-1].seq, since=None, limit=100)
        assert [(c.article_id, c.kind) for c in later] == [(slow_id, "CREATED")]
        assert later[0].seq > served[-1].seq
    finally:
        await slow.close()
        await fast.close()


async def test_numbering_waits_for_the_transaction_numbering_before_it(feed_url: str) -> None:
    first, second = await asyncpg.connect(feed_url), await asyncpg.connect(feed_url)
    try:
        source_1 = await _source(first, "numbering-1.example")
        source_2 = await _source(first, "numbering-2.example")
        tx = first.transaction()
        await tx.start()
        await first.fetchval(INSERT_ARTICLE, source_1, "https://raw.example/numbering-1")
        # Numbering now, as COMMIT would: the lock is held until this transaction ends.
        await first.execute("SET CONSTRAINTS articles_record_change IMMEDIATE")
        committed = asyncio.create_task(
            second.fetchval(INSERT_ARTICLE, source_2, "https://raw.example/numbering-2")
        )
        await asyncio.sleep(0.3)
        assert not committed.done()  # its commit (autocommit) waits to be numbered
        await tx.commit()
        await asyncio.wait_for(committed, 10)
        seqs = await first.fetch(
            "SELECT a.canonical_url, c.seq FROM article_changes c JOIN articles a "
            "ON a.id = c.article_id WHERE a.canonical_url LIKE 'https://raw.example/numbering-%' "
            "ORDER BY c.seq"
        )
        assert [r["canonical_url"] for r in seqs] == [
            "https://raw.example/numbering-1",
            "https://raw.example/numbering-2",
        ]
    finally:
        await first.close()
        await second.close()


async def test_creates_updates_and_removals_move_an_article_to_the_end(
    feed_db: Database,
) -> None:
    start = await _head(feed_db)
    item = article_input(url="https://changes.example/story")
    [created] = await ingest_batch(feed_db, [item])
    [other] = await ingest_batch(feed_db, [article_input()])
    [unchanged] = await ingest_batch(feed_db, [item])
    assert unchanged.status == "UNCHANGED"
    page = await fetch_changes(feed_db, after=start, since=None, limit=100)
    assert [(c.article_id, c.kind) for c in page] == [
        (created.article_id, "CREATED"),
        (other.article_id, "CREATED"),
    ]
    assert page[0].article is not None
    assert page[0].article.title == item["title"]
    [updated] = await ingest_batch(feed_db, [{**item, "title": "Changed"}])
    assert updated.status == "UPDATED"
    page = await fetch_changes(feed_db, after=start, since=None, limit=100)
    assert [(c.article_id, c.kind) for c in page] == [
        (other.article_id, "CREATED"),
        (created.article_id, "UPDATED"),
    ]
    assert page[1].article is not None
    assert page[1].article.title == "Changed"


async def test_created_and_updated_in_one_transaction_is_created(
    feed_url: str, feed_db: Database
) -> None:
    start = await _head(feed_db)
    conn = await asyncpg.connect(feed_url)
    try:
        source = await _source(conn, "once.example")
        async with asyncio.timeout(10), conn.transaction():
            article = await conn.fetchval(INSERT_ARTICLE, source, "https://raw.example/once")
            await conn.execute("UPDATE articles SET title = 'Edited' WHERE id = $1", article)
    finally:
        await conn.close()
    page = await fetch_changes(feed_db, after=start, since=None, limit=100)
    assert [(c.article_id, c.kind) for c in page] == [(article, "CREATED")]
    assert page[0].article is not None
    assert page[0].article.title == "Edited"


async def test_since_starts_at_the_first_change_at_or_after_a_time(feed_db: Database) -> None:
    await ingest_batch(feed_db, [article_input()])
    everything = await fetch_changes(feed_db, after=None, since=None, limit=1_000_000)
    middle = everything[len(everything) // 2]
    from_middle = await fetch_changes(feed_db, after=None, since=middle.changed_at, limit=1000)
    assert from_middle[0].seq == middle.seq
    future = datetime.now(UTC) + timedelta(days=1)
    assert await fetch_changes(feed_db, after=None, since=future, limit=10) == []


@pytest.mark.parametrize("limit", [1, 2])
async def test_pages_follow_each_other_without_gaps(feed_db: Database, limit: int) -> None:
    everything = await fetch_changes(feed_db, after=None, since=None, limit=1_000_000)
    seen: list[int] = []
    after = None
    while True:
        page = await fetch_changes(feed_db, after=after, since=None, limit=limit)
        if not page:
            break
        seen += [c.seq for c in page]
        after = page[-1].seq
    assert seen == [c.seq for c in everything]
