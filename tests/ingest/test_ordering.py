from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import orjson
import pytest

from service.db.pool import Database
from service.ingest import pipeline
from service.ingest.ordering import EarlierBatchFailed, WriteOrder
from service.ingest.pipeline import ItemResult, ingest_batch
from service.ingest.stream import ingest_lines
from tests.factories import article_input

RUN = uuid.uuid4().hex[:10]


async def _started(task: asyncio.Task[Any]) -> bool:
    """Whether `task` gets past its waits once the loop has run everything ready."""
    for _ in range(5):
        await asyncio.sleep(0)
    return task.done()


async def test_one_writer_writes_each_batch_after_the_one_before() -> None:
    order = WriteOrder(writers=1)
    first, second = order.next(), order.next()
    assert not second.shares_writes
    await first.wait_for_room()
    waiting = asyncio.create_task(second.wait_for_room())
    assert not await _started(waiting)
    first.finish()
    assert await _started(waiting)


async def test_two_writers_write_beside_each_other_unless_they_claim_the_same_url() -> None:
    order = WriteOrder(writers=2)
    first, second, third = order.next(), order.next(), order.next()
    await first.wait_for_room()
    await first.claim({"https://a.example/1"})
    await second.wait_for_room()
    await second.claim({"https://a.example/2"})  # nothing shared: writes at once
    # The third shares a URL with the second, and must wait for the first to end anyway.
    room = asyncio.create_task(third.wait_for_room())
    assert not await _started(room)
    first.finish()
    assert await _started(room)
    claim = asyncio.create_task(third.claim({"https://a.example/2", "https://a.example/3"}))
    assert not await _started(claim)
    second.finish()
    assert await _started(claim)


async def test_a_batch_waits_for_the_claims_of_the_one_before() -> None:
    order = WriteOrder(writers=2)
    first, second = order.next(), order.next()
    await second.wait_for_room()
    claim = asyncio.create_task(second.claim({"https://a.example/1"}))
    assert not await _started(claim)  # the first has not said what it writes yet
    await first.claim({"https://a.example/9"})
    assert await _started(claim)


async def test_a_batch_that_would_write_after_a_failed_one_is_not_written() -> None:
    order = WriteOrder(writers=2)
    first, second, third = order.next(), order.next(), order.next()
    first.finish(RuntimeError("down"))
    with pytest.raises(EarlierBatchFailed):
        await second.wait_for_room()
    second.finish(EarlierBatchFailed())
    with pytest.raises(EarlierBatchFailed):
        await third.wait_for_room()


def _item(key: str, **overrides: Any) -> dict[str, Any]:
    return article_input(url=f"https://ordering.example/{RUN}/{key}", **overrides)


async def _lines(items: Sequence[object]) -> AsyncIterator[bytes]:
    yield b"".join(orjson.dumps(item) + b"\n" for item in items)


async def _ingest(
    db: Database, items: Sequence[object], writers: int = 2, batch_size: int = 1
) -> list[str]:
    return [
        r.status
        async for batch in ingest_lines(
            lambda batch, turn: ingest_batch(db, batch, turn=turn),
            _lines(items),
            batch_size=batch_size,
            max_line_bytes=1_048_576,
            writers=writers,
        )
        for r in batch
    ]


@pytest.fixture
def slow_first_write(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first batch written takes a while, so a later batch could overtake it."""
    store = pipeline._store
    calls = 0

    async def slow(db: Database, drafts: Any, writer: Any = None) -> list[ItemResult]:
        nonlocal calls
        calls += 1
        if calls == 1:
            await asyncio.sleep(0.3)
        return await store(db, drafts, writer)

    monkeypatch.setattr(pipeline, "_store", slow)


@pytest.mark.usefixtures("slow_first_write")
async def test_versions_of_one_url_are_applied_in_line_order_by_two_writers(
    db: Database,
) -> None:
    versions = [_item("versions", title=f"Version {n}") for n in range(4)]
    statuses = await _ingest(db, versions)
    title = await db.fetchval(
        "SELECT title FROM articles WHERE canonical_url = $1", versions[0]["url"]
    )
    assert (statuses, title) == (["CREATED", "UPDATED", "UPDATED", "UPDATED"], "Version 3")


@pytest.mark.usefixtures("slow_first_write")
async def test_other_urls_of_one_stored_article_are_applied_in_line_order(
    db: Database,
) -> None:
    # One stored article known by two more URLs; then one batch per URL, the first slow.
    # The batches share no URL, only the article they belong to.
    canonical = f"https://ordering.example/{RUN}/known"
    amp, mobile = f"{canonical}/amp", f"{canonical}/mobile"
    for url in (amp, mobile):
        await ingest_batch(db, [article_input(url=url, canonicalUrl=canonical, title="Stored")])
    statuses = await _ingest(
        db,
        [
            article_input(url=amp, title="First edit"),
            article_input(url=mobile, title="Second edit"),
        ],
    )
    rows = await db.fetch("SELECT title FROM articles WHERE canonical_url = $1", canonical)
    assert (statuses, [r["title"] for r in rows]) == (["UPDATED", "UPDATED"], ["Second edit"])


@pytest.mark.usefixtures("slow_first_write")
async def test_a_url_that_a_batch_in_flight_records_finds_its_article(db: Database) -> None:
    # The first line stores an article under its canonical URL and records its AMP URL;
    # the second line names only the AMP URL: the same article, not a second one.
    canonical = f"https://ordering.example/{RUN}/fresh"
    amp = f"https://ordering.example/{RUN}/fresh/amp"
    statuses = await _ingest(
        db,
        [
            article_input(url=amp, canonicalUrl=canonical, title="Fresh"),
            article_input(url=amp, title="Fresh, edited"),
        ],
    )
    rows = await db.fetch(
        "SELECT a.title FROM articles a JOIN article_urls u ON u.article_id = a.id "
        "WHERE u.url = ANY($1::text[]) GROUP BY a.id",
        [canonical, amp],
    )
    assert (statuses, [r["title"] for r in rows]) == (["CREATED", "UPDATED"], ["Fresh, edited"])


async def test_batches_that_share_nothing_are_written_at_once(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = pipeline._store
    writing = 0
    most = 0

    async def counted(db: Database, drafts: Any, writer: Any = None) -> list[ItemResult]:
        nonlocal writing, most
        writing += 1
        most = max(most, writing)
        try:
            await asyncio.sleep(0.1)
            return await store(db, drafts, writer)
        finally:
            writing -= 1

    monkeypatch.setattr(pipeline, "_store", counted)
    statuses = await _ingest(db, [_item(f"apart-{n}") for n in range(6)])
    assert (statuses, most) == (["CREATED"] * 6, 2)


async def test_concurrent_streams_of_overlapping_articles_make_no_duplicates(
    db: Database,
) -> None:
    items = [
        _item(f"streams-{n}", entities=[{"name": f"Stream Entity {n % 5}", "kind": "OTHER"}])
        for n in range(40)
    ]
    orders = [items, list(reversed(items)), items[10:] + items[:10]]

    results = await asyncio.gather(*(_ingest(db, order, batch_size=7) for order in orders))
    assert all(status in ("CREATED", "UNCHANGED") for statuses in results for status in statuses)
    count = await db.fetchval(
        "SELECT count(*) FROM articles WHERE canonical_url LIKE $1",
        f"https://ordering.example/{RUN}/streams-%",
    )
    entities = await db.fetchval("SELECT count(*) FROM entities WHERE slug LIKE 'stream-entity-%'")
    assert (count, entities) == (40, 5)
