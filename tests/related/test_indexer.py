"""Related-stories indexing after commit: the queue the ingest transaction fills, and the
indexer that empties it (claims with SKIP LOCKED, indexes, deletes in one transaction).

These tests commit, and several use two connections at once, so they run on a database of
their own (empty: no demo news), where the queue holds only what they put there.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
import pytest_asyncio

from service.app import create_app
from service.config import ConfigError, Settings
from service.db import related_queue, stories
from service.db.pool import Database, connect, open_database
from service.db.takedowns import remove_articles
from service.ids import decode_typed_id
from service.ingest.pipeline import ingest_batch
from service.related import indexer, lists
from service.related.indexer import drain, index_queued
from tests.factories import article_input
from tests.feed_support import scratch_database
from tests.support import with_state

LEAD = (
    "The central bank of Norway raised its policy rate by a quarter point to 4.5 percent on "
    "Thursday, its highest since 2008, and said it would likely keep it there for some time, "
    "as inflation stays well above the target of two percent and the krone remains weak."
)


def _item(n: int, **extra: Any) -> dict[str, Any]:
    return article_input(
        url=f"https://queue.example/news/{n}",
        title=f"Norway raises its policy rate, story {n}",
        body=LEAD,
        source={"domain": f"paper{n % 3}.example", "name": f"Paper {n % 3}"},
        **extra,
    )


@pytest_asyncio.fixture(scope="module")
async def queue_url(server_url: str) -> AsyncIterator[str]:
    async with scratch_database(server_url, "related_queue") as url:
        yield url


@pytest_asyncio.fixture(scope="module")
async def qdb(queue_url: str, settings: Settings) -> AsyncIterator[Database]:
    async with open_database(settings.with_database(queue_url)) as database:
        yield database


@pytest_asyncio.fixture
async def empty_queue(qdb: Database) -> Database:
    """The scratch database with nothing queued (what earlier tests left is indexed)."""
    async with asyncio.timeout(60):
        await drain(qdb)
    return qdb


async def _queued(db: Database) -> list[int]:
    rows = await db.fetch("SELECT article_id FROM related_queue ORDER BY article_id")
    return [r["article_id"] for r in rows]


async def _indexed(db: Database, ids: list[int]) -> set[int]:
    rows = await db.fetch(
        "SELECT article_id FROM article_signals WHERE article_id = ANY($1::bigint[])", ids
    )
    return {r["article_id"] for r in rows}


async def _eventually(check: Callable[[], Awaitable[bool]], *, within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not so within {within} s")
        await asyncio.sleep(0.1)


async def _ingest(db: Database, items: list[dict[str, Any]]) -> list[int]:
    results = await ingest_batch(db, items)
    assert all(r.status in ("CREATED", "UPDATED") for r in results), results
    return [r.article_id for r in results if r.article_id is not None]


async def test_ingest_queues_in_its_transaction_and_indexes_nothing(
    empty_queue: Database, queue_url: str
) -> None:
    db = empty_queue
    # Rolled back: neither the articles nor their queue rows remain.
    conn = await connect(queue_url)
    try:
        tx = conn.transaction()
        await tx.start()
        inside = Database(conn)
        ids = await _ingest(inside, [_item(1), _item(2)])
        assert await _queued(inside) == sorted(ids)
        await tx.rollback()
    finally:
        await conn.close()
    assert await _queued(db) == []
    # Committed: queued, and not indexed yet (that is the indexer's work, after commit).
    ids = await _ingest(db, [_item(3), _item(4)])
    assert await _queued(db) == sorted(ids)
    assert await _indexed(db, ids) == set()


async def test_the_indexer_indexes_and_deletes_from_the_queue(empty_queue: Database) -> None:
    db = empty_queue
    documents = await db.fetchval("SELECT documents FROM related_stats")
    ids = await _ingest(db, [_item(10), _item(11), _item(12)])
    assert await index_queued(db) == 3
    assert await _queued(db) == []
    assert await _indexed(db, ids) == set(ids)
    # Three copies of one wire text: one original, the others point at it; one story.
    rows = await db.fetch(
        "SELECT story_id, duplicate_of FROM article_signals WHERE article_id = ANY($1)", ids
    )
    assert len({r["story_id"] for r in rows}) == 1
    assert sum(r["duplicate_of"] is not None for r in rows) == 2
    assert await db.fetchval("SELECT documents FROM related_stats") == documents + 3
    assert await index_queued(db) == 0


async def test_a_crash_mid_index_leaves_the_ids_queued(
    empty_queue: Database, queue_url: str
) -> None:
    db = empty_queue
    ids = await _ingest(db, [_item(20), _item(21)])
    # The database refuses the indexer's writes part-way (after the claim, the document
    # frequencies and the signals): its transaction rolls back, claim included.
    admin = await asyncpg.connect(queue_url)
    try:
        await admin.execute(
            """
            CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'indexer crashed'; END $$;
            CREATE TRIGGER test_refuse AFTER INSERT ON article_terms
            FOR EACH STATEMENT EXECUTE FUNCTION test_refuse();
            """
        )
        try:
            with pytest.raises(asyncpg.RaiseError, match="indexer crashed"):
                await index_queued(db)
        finally:
            await admin.execute(
                "DROP TRIGGER test_refuse ON article_terms; DROP FUNCTION test_refuse()"
            )
    finally:
        await admin.close()
    assert await _queued(db) == sorted(ids)
    assert await _indexed(db, ids) == set()
    # The next run indexes them.
    assert await index_queued(db) == 2
    assert await _indexed(db, ids) == set(ids)


async def test_concurrent_indexers_never_claim_the_same_ids(
    empty_queue: Database, queue_url: str, settings: Settings
) -> None:
    db = empty_queue
    ids = await _ingest(db, [_item(n) for n in range(30, 42)])
    # One indexer holds a claim (its transaction open); another takes only the rest.
    conn = await connect(queue_url)
    held: list[int] = []

    async def hold_then_stop() -> None:
        async with Database(conn).transaction() as w:
            held.extend(await related_queue.claim(w, 5))
            assert len(held) == 5
            assert await index_queued(db, 100) == len(ids) - 5
            assert await _indexed(db, held) == set()
            raise RuntimeError("holder stops")

    try:
        with pytest.raises(RuntimeError, match="holder stops"):
            await hold_then_stop()
    finally:
        await conn.close()
    # Its transaction rolled back: what it held is queued again, not lost.
    assert await _queued(db) == held
    assert await drain(db) == 5
    # Several indexers draining together each claim disjoint batches.
    ids = await _ingest(db, [_item(n) for n in range(50, 70)])
    async with open_database(settings.with_database(queue_url)) as other:
        counts = await asyncio.gather(drain(db, limit=3), drain(other, limit=3))
    assert sum(counts) == len(ids)
    assert await _queued(db) == []
    assert await _indexed(db, ids) == set(ids)


async def test_taken_down_articles_are_skipped(empty_queue: Database) -> None:
    db = empty_queue
    kept, removed = await _ingest(db, [_item(80), _item(81)])
    outcome = await remove_articles(db, [removed], "test", removed_by=None)
    assert outcome[removed].status == "REMOVED"
    assert await _queued(db) == sorted([kept, removed])  # ids vanish from articles only
    assert await index_queued(db) == 2
    assert await _queued(db) == []
    assert await _indexed(db, [kept, removed]) == {kept}


async def test_unchanged_resends_are_not_queued_changed_ones_are(empty_queue: Database) -> None:
    db = empty_queue
    item = _item(90)
    [article_id] = await _ingest(db, [item])
    await drain(db)
    documents = await db.fetchval("SELECT documents FROM related_stats")
    [again] = await ingest_batch(db, [item])
    assert again.status == "UNCHANGED"
    assert await _queued(db) == []
    changed = dict(item, title="Kilauea erupts in Hawaii", body="Lava fountains " * 20)
    [updated] = await ingest_batch(db, [changed])
    assert updated.status == "UPDATED"
    assert await _queued(db) == [article_id]
    before = await db.fetchval(
        "SELECT terms FROM article_signals WHERE article_id = $1", article_id
    )
    await drain(db)
    after = await db.fetchval("SELECT terms FROM article_signals WHERE article_id = $1", article_id)
    assert after != before
    # A re-index is not a new document.
    assert await db.fetchval("SELECT documents FROM related_stats") == documents


async def test_signals_of_a_batch_keep_each_articles_own_vector(empty_queue: Database) -> None:
    # The rows' vectors are sent as flat arrays cut by bounds (service.db.stories).
    db = empty_queue
    ids = await _ingest(db, [_item(n) for n in (195, 196, 197)])
    published = datetime(2025, 1, 1, tzinfo=UTC)
    vectors = {
        ids[0]: ([7, -3, 11], [0.5, 0.25, 0.125], [1.0, 2.0, 3.0]),
        ids[1]: ([], [], []),
        ids[2]: ([42], [0.75], [1.5]),
    }
    rows = [
        stories.SignalRow(
            article_id=article_id,
            source_id=1,
            language="en",
            published_at=published,
            dated=True,
            terms=terms,
            weights=weights,
            tfs=tfs,
            signature=None,
            postings=[],
            bands=[],
        )
        for article_id, (terms, weights, tfs) in vectors.items()
    ]
    async with db.transaction() as w:
        await stories.write_signals(w, list(reversed(rows)))
    stored = await db.fetch(
        "SELECT article_id, terms, weights, tfs FROM article_signals"
        " WHERE article_id = ANY($1::bigint[])",
        ids,
    )
    assert {r["article_id"]: (r["terms"], r["weights"], r["tfs"]) for r in stored} == vectors


VOLCANO = (
    "A volcano erupted near the fishing town of Grindavik on the Reykjanes peninsula, sending "
    "lava fountains into the night sky; the Meteorological Office said the fissure was four "
    "kilometres long and the Blue Lagoon spa was evacuated."
)
MATCH = (
    "Manchester City beat Arsenal four goals to one at the Etihad to move top of the Premier "
    "League, with Kevin De Bruyne scoring twice and Erling Haaland adding a late header for "
    "the champions in front of a sold-out crowd."
)


def _story(n: int, title: str, body: str) -> dict[str, Any]:
    return article_input(url=f"https://merge.example/news/{n}", title=title, body=body)


async def test_an_article_close_to_two_stories_merges_them(empty_queue: Database) -> None:
    db = empty_queue
    [volcano, match] = await _ingest(
        db,
        [
            _story(210, "Volcano erupts near Grindavik", VOLCANO),
            _story(211, "Manchester City beat Arsenal", MATCH),
        ],
    )
    await drain(db)
    story = "SELECT story_id FROM article_signals WHERE article_id = $1"
    first, second = await db.fetchval(story, volcano), await db.fetchval(story, match)
    assert first != second
    # One article covering both at length is close to each (cosine over 0.6): it joins one
    # story and the other is merged into it; the merged id resolves to the survivor.
    [both] = await _ingest(
        db, [_story(212, "Grindavik volcano; City beat Arsenal", f"{VOLCANO} {MATCH}")]
    )
    await drain(db)
    survivor = await db.fetchval(story, both)
    assert {await db.fetchval(story, volcano), await db.fetchval(story, match)} == {survivor}
    gone = ({first, second} - {survivor}).pop()
    merged = "SELECT merged_into, article_count FROM stories WHERE id = $1"
    assert tuple(await db.fetchrow(merged, gone) or ()) == (survivor, 0)
    assert await db.fetchval("SELECT article_count FROM stories WHERE id = $1", survivor) == 3


async def test_a_new_article_is_logged_once_for_the_related_lists(empty_queue: Database) -> None:
    # Its signals row is written once, with its story and original: one entry in the
    # refresher's log (an insert, then updates setting the story and the original, logged it
    # three times; these two are copies of each other).
    db = empty_queue
    ids = await _ingest(db, [_story(n, f"Solo story number {n}", VOLCANO) for n in (220, 221)])
    await drain(db)
    rows = await db.fetch(
        "SELECT article_id, count(*) AS n FROM related_refresh"
        " WHERE article_id = ANY($1::bigint[]) GROUP BY article_id",
        ids,
    )
    assert {r["article_id"]: r["n"] for r in rows} == dict.fromkeys(ids, 1)
    assert (
        await db.fetchval(
            "SELECT count(DISTINCT story_id) FROM article_signals WHERE article_id = ANY($1)", ids
        )
        == 1
    )


async def test_a_change_during_indexing_is_queued_again(
    empty_queue: Database, queue_url: str
) -> None:
    db = empty_queue
    item = _item(95)
    [article_id] = await _ingest(db, [item])
    conn = await connect(queue_url)
    try:
        indexer = Database(conn)
        async with indexer.transaction() as w:
            assert await related_queue.claim(w, 10) == [article_id]
            # The article changes while it is being indexed (read before the change): the
            # ingest waits for the claim to commit, then queues the article again.
            update = asyncio.create_task(ingest_batch(db, [dict(item, title="Changed")]))
            await asyncio.sleep(0.2)
        [result] = await update
    finally:
        await conn.close()
    assert result.status == "UPDATED"
    assert await _queued(db) == [article_id]


async def test_a_queued_article_changing_is_not_claimed_before_its_commit(
    empty_queue: Database, queue_url: str
) -> None:
    db = empty_queue
    item = _item(96)
    [article_id] = await _ingest(db, [item])
    conn = await connect(queue_url)
    try:
        tx = conn.transaction()
        await tx.start()
        # An ingest changes the queued article and has not committed yet: an indexer must
        # not take the id now (it would read the old text and delete the id for good).
        [result] = await ingest_batch(Database(conn), [dict(item, title="Changed again")])
        assert result.status == "UPDATED"
        assert await index_queued(db) == 0
        assert await index_queued(db) == 0
        await tx.commit()
    finally:
        await conn.close()
    assert await _queued(db) == [article_id]
    await drain(db)
    assert await _indexed(db, [article_id]) == {article_id}


async def test_the_app_indexes_in_the_background(
    empty_queue: Database, queue_url: str, settings: Settings
) -> None:
    app_settings = dataclasses.replace(settings.with_database(queue_url), related_indexer="thread")
    app = create_app(app_settings)
    lines = b"".join(orjson.dumps(_item(n), option=orjson.OPT_APPEND_NEWLINE) for n in (100, 101))
    async with (
        app.router.lifespan_context(app) as state,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=with_state(app, state)),
            base_url="http://newsgraph.test",
        ) as http,
    ):
        answer = await http.post(
            "/v1/ingest", content=lines, headers={"content-type": "application/x-ndjson"}
        )
        assert answer.status_code == 200
        ids = [
            decode_typed_id(orjson.loads(line)["id"], "Article")
            for line in answer.content.splitlines()
        ]

        # Woken by the ingest's NOTIFY (or its one-second poll): well within 10 s.
        async def indexed() -> bool:
            return await _indexed(empty_queue, ids) == set(ids)

        async def counted() -> bool:
            return "newsgraph_related_indexed_total 2.0" in (await http.get("/metrics")).text

        await _eventually(indexed, within=10)
        assert await _queued(empty_queue) == []
        await _eventually(counted, within=10)
        assert "newsgraph_related_queue_depth 0.0" in (await http.get("/metrics")).text
        assert (await http.get("/readyz")).json()["relatedQueue"] == 0


async def test_the_background_indexer_steps_back_while_its_process_ingests(
    write_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lists, "_last_ingest", -lists.BUSY_SECONDS)  # no ingest lately
    assert not lists.ingesting()
    assert indexer.pause_after(2.0, 0.25, lists.ingesting()) == 0  # full speed
    await ingest_batch(write_db, [article_input(title="A bulk load")])
    assert lists.ingesting()
    assert indexer.pause_after(2.0, 0.25, lists.ingesting()) == pytest.approx(6.0)
    assert indexer.pause_after(2.0, 1.0, lists.ingesting()) == 0  # a share of 100 %


@pytest.mark.parametrize("percent", ["0", "101", "x"])
def test_the_indexer_share_must_be_a_percentage(percent: str) -> None:
    with pytest.raises(ConfigError, match="NEWSGRAPH_RELATED_INDEX_PERCENT_INGESTING"):
        Settings.from_environ({"NEWSGRAPH_RELATED_INDEX_PERCENT_INGESTING": percent})


@pytest.mark.parametrize("ingesting", [True, False])
async def test_a_running_indexer_pauses_between_batches_only_while_ingesting(
    empty_queue: Database, queue_url: str, ingesting: bool
) -> None:
    # Batches of one; held to 0.1 % of the time, the pause after the first batch is ~1,000x
    # its length (seconds), so the second article stays queued; not ingesting, no pause.
    first = 110 if ingesting else 112
    ids = await _ingest(empty_queue, [_item(first), _item(first + 1)])
    worker = indexer.RelatedIndexer(
        queue_url, batch_size=1, ingesting_share=0.001, ingesting=lambda: ingesting
    )
    worker.start()
    try:

        async def some() -> bool:
            return bool(await _indexed(empty_queue, ids))

        async def all_() -> bool:
            return await _indexed(empty_queue, ids) == set(ids)

        await _eventually(some, within=10)
        if ingesting:
            await asyncio.sleep(2)
            assert len(await _indexed(empty_queue, ids)) == 1
            assert len(await _queued(empty_queue)) == 1
        else:
            await _eventually(all_, within=10)
    finally:
        await worker.stop()
