"""Stored related lists: computed by the online ranking, served while valid, refreshed when
the neighbourhood changes, and never served stale after a takedown or an exclusion."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from typing import Any

import orjson
import pytest

from service.config import ConfigError, Settings
from service.db import related_lists, related_queue
from service.db.articles import SELECT_ARTICLES_BY_IDS
from service.db.pool import Database, open_database, track_statements
from service.db.sources import SELECT_SOURCES_BY_IDS
from service.db.stories import set_exclude_from_related
from service.db.takedowns import remove_articles
from service.graphql.compiled import COMPILED
from service.ids import decode_typed_id, encode_id
from service.ingest.pipeline import ingest_batch
from service.related import indexer, lists
from service.related.find_related import RelatedQuery, find_related
from service.resources import operations_dir
from tests.conftest import GraphQLRunner
from tests.feed_support import scratch_database
from tests.related.test_related_stories import ARTICLES, ICELAND_2, RELATED, _item
from tests.support import app_client

NEWCOMER = _item(
    40,
    "reykjavik.example",
    "Grindavik eruption: lava reaches the town's defences in Iceland",
    ICELAND_2 + " The Blue Lagoon stays shut.",
    "2024-12-19T12:00:00Z",
)


async def _ingest(db: Database, items: list[dict[str, Any]]) -> list[int]:
    results = await ingest_batch(db, items)
    assert all(r.status == "CREATED" for r in results), results
    await indexer.drain(db)  # related stories are indexed after commit
    return [r.article_id for r in results if r.article_id is not None]


async def _settle(db: Database) -> None:
    """Index and refresh what other tests committed (undone with this test's transaction)."""
    await indexer.drain(db)
    await lists.drain(db)


async def _queued(db: Database, ids: list[int]) -> set[int]:
    rows = await db.fetch(
        "SELECT DISTINCT article_id FROM related_refresh WHERE article_id = ANY($1::bigint[])", ids
    )
    return {r["article_id"] for r in rows}


async def _valid(db: Database, ids: list[int]) -> dict[int, str]:
    """The valid stored lists (JSON text) of `ids`."""
    return (await related_lists.fetch_valid_lists(db, ids, lists.LIST_SIZE)).lists


async def _stored(db: Database, article_id: int) -> list[int]:
    text = (await _valid(db, [article_id])).get(article_id)
    assert text is not None, f"no valid list for {article_id}"
    return [i.article_id for i in lists.decode_items(text)]


async def test_indexing_queues_and_the_refresher_stores_the_online_ranking(
    write_db: Database,
) -> None:
    ids = await _ingest(write_db, ARTICLES)
    assert await _queued(write_db, ids) == set(ids)  # in the indexer's own transaction
    assert await _valid(write_db, ids) == {}
    online = await find_related(write_db, ids, lists.LIST_QUERY)
    assert await lists.drain(write_db) > 0
    assert await _queued(write_db, ids) == set()
    stored = await _valid(write_db, ids)
    assert set(stored) == set(ids)
    for article_id in ids:
        assert lists.decode_items(stored[article_id]) == online[article_id]
    # Any first up to the stored size is a prefix; other arguments are ranked online.
    for query in (RelatedQuery(first=1, window_days=30), RelatedQuery(first=5, window_days=30)):
        served = (await lists.related_stories(write_db, ids, query)).items
        assert served == await find_related(write_db, ids, query)
    wide = RelatedQuery(first=5, window_days=400, include_same_source=True)
    with track_statements(record=True) as log:
        await lists.related_stories(write_db, ids[:1], wide)
    # Signals, candidates, then the listed articles: no stored-list lookup for these arguments.
    assert log.count == 3
    assert log.statements[-1] == related_lists.SELECT_LISTED_ARTICLES


async def test_a_new_neighbour_enters_the_lists_once_refreshed(write_db: Database) -> None:
    ids = await _ingest(write_db, ARTICLES)
    await lists.drain(write_db)
    assert NEWCOMER["url"] not in await _stored(write_db, ids[0])
    (new,) = await _ingest(write_db, [NEWCOMER])
    # Its own refresh cascades to the articles of its list, which go stale until re-ranked.
    await lists.refresh_once(write_db)
    assert ids[0] in await _queued(write_db, [ids[0]])
    assert ids[0] not in await _valid(write_db, [ids[0]])
    query = RelatedQuery(first=5, window_days=30)
    meanwhile = (await lists.related_stories(write_db, [ids[0]], query)).items[ids[0]]
    assert new in [i.article_id for i in meanwhile]  # ranked online until then
    await lists.drain(write_db)
    assert new in await _stored(write_db, ids[0])
    assert (await lists.related_stories(write_db, [ids[0]], query)).items[ids[0]] == meanwhile


async def test_the_cascade_skips_full_lists_a_newcomer_cannot_enter(write_db: Database) -> None:
    ids = await _ingest(write_db, ARTICLES)
    await lists.drain(write_db)
    (new,) = await _ingest(write_db, [NEWCOMER])
    online = (await find_related(write_db, [new], lists.LIST_QUERY))[new]
    neighbours = [i.article_id for i in online]
    assert ids[0] in neighbours
    assert len(neighbours) >= 2
    # One neighbour's list is full of items scoring far above the newcomer; another's is not.
    blocked, open_ = ids[0], next(n for n in neighbours if n != ids[0])
    await write_db.fetchval(
        "UPDATE related_lists SET floor = CASE article_id WHEN $1 THEN 5 ELSE NULL END "
        "WHERE article_id = ANY($2::bigint[]) RETURNING 1",
        blocked,
        [blocked, open_],
    )
    await lists.refresh_once(write_db)  # the newcomer's own row
    queued = await _queued(write_db, [blocked, open_])
    assert open_ in queued
    assert blocked not in queued


async def test_takedowns_and_exclusions_invalidate_the_lists_naming_them(
    write_db: Database,
) -> None:
    ids = await _ingest(write_db, ARTICLES)
    await lists.drain(write_db)
    gone, hidden = (await _stored(write_db, ids[0]))[:2]
    await remove_articles(write_db, [gone], "legal", removed_by=None)
    # Stale at once, in the takedown's transaction: never served naming a removed article.
    assert await _valid(write_db, [ids[0]]) == {}
    assert (
        await write_db.fetchval("SELECT count(*) FROM related_lists WHERE article_id = $1", gone)
        == 0
    )
    await lists.drain(write_db)
    assert gone not in await _stored(write_db, ids[0])
    assert await set_exclude_from_related(write_db, hidden, True)
    assert await _valid(write_db, [ids[0]]) == {}
    await lists.drain(write_db)
    assert hidden not in await _stored(write_db, ids[0])
    assert await set_exclude_from_related(write_db, hidden, False)
    await lists.drain(write_db)
    assert hidden in await _stored(write_db, ids[0])


async def test_claims_are_disjoint_and_an_abandoned_claim_is_taken_over(
    write_db: Database,
) -> None:
    await _settle(write_db)
    ids = await _ingest(write_db, ARTICLES)
    first = await related_lists.claim(write_db, 4)
    second = await related_lists.claim(write_db, 100)
    assert first.seqs
    assert second.seqs
    assert not set(first.seqs) & set(second.seqs)
    assert (await related_lists.claim(write_db, 100)).seqs == []
    # A refresher that died holding `first`: its rows stay queued (lists invalid), and are
    # taken again once the claim is old.
    assert await _queued(write_db, ids) == set(ids)
    await write_db.fetchval(
        "UPDATE related_refresh SET claimed_at = now() - interval '1 hour' "
        "WHERE seq = ANY($1::bigint[]) RETURNING 1",
        first.seqs,
    )
    again = await related_lists.claim(write_db, 100)
    assert sorted(again.seqs) == first.seqs


# Ids no article has (the demo articles may still be queued): the logs have no key to them.
LONG_REFRESH_LOG = """INSERT INTO related_refresh (article_id, cascade)
SELECT n, false FROM generate_series(1000000000000, 1000000049999) n"""
LONG_QUEUE = """INSERT INTO related_queue (article_id)
SELECT generate_series(1000000000000, 1000000049999)"""


@pytest.mark.parametrize(
    ("fill", "table", "claim", "args"),
    [
        (LONG_REFRESH_LOG, "related_refresh", related_lists.CLAIM,
         (100, related_lists.CLAIM_TIMEOUT)),
        (LONG_QUEUE, "related_queue", related_queue.CLAIM, (indexer.BATCH_SIZE,)),
    ],
)  # fmt: skip
async def test_a_claim_reads_a_long_log_by_its_indexes(
    write_db: Database, fill: str, table: str, claim: str, args: tuple[object, ...]
) -> None:
    # A claim costs the same whatever the backlog (the refresh log's and the indexing
    # queue's): the rows it takes are found by index. With `IN (SELECT ...)` the planner
    # read the whole log in every claim (bench/refresh_claims.py).
    async with write_db.transaction() as w:
        await w.execute(fill)
        await w.execute(f"ANALYZE {table}")
    plan = "\n".join(r[0] for r in await write_db.fetch("EXPLAIN " + claim, *args))
    assert "Seq Scan" not in plan, plan
    assert "Index" in plan, plan


async def test_a_claim_takes_every_free_row_of_its_articles(write_db: Database) -> None:
    await _settle(write_db)
    ids = await _ingest(write_db, ARTICLES)
    oldest = await write_db.fetchval(
        "SELECT article_id FROM related_refresh WHERE article_id = ANY($1::bigint[]) "
        "ORDER BY seq LIMIT 1",
        ids,
    )
    await write_db.fetchval(  # a later row for the same article
        "INSERT INTO related_refresh (article_id, cascade) VALUES ($1, false) RETURNING seq",
        oldest,
    )
    rows = await write_db.fetchval(
        "SELECT count(*) FROM related_refresh WHERE article_id = $1", oldest
    )
    assert rows >= 2
    claimed = await related_lists.claim(write_db, 1)
    assert list(claimed.articles) == [oldest]
    assert len(claimed.seqs) == rows
    assert claimed.articles[oldest]  # one row asked for the cascade: the claim does


async def test_the_compiled_article_page_reads_the_stored_list_in_one_statement(
    gql_write: GraphQLRunner, settings: Settings, write_db: Database
) -> None:
    ids = await _ingest(write_db, ARTICLES)
    op = next(op for op in COMPILED if op.stem == "article_page")
    document = (operations_dir() / "article_page.graphql").read_text(encoding="utf-8")
    variables = {"id": encode_id("Article", ids[0])}
    args = op.prepare(variables, settings)
    assert args is not None
    with track_statements() as log:
        online = orjson.loads(await op.run(write_db, args))
    assert log.count == 4  # no valid list: the page, signals, candidates, the page again
    assert online == await gql_write.data(document, **variables)
    await lists.drain(write_db)
    with track_statements() as log:
        stored = orjson.loads(await op.run(write_db, args))
    assert log.count == 1
    assert stored == online == await gql_write.data(document, **variables)
    assert stored["article"]["relatedStories"]
    general = await gql_write.data(RELATED, id=variables["id"])
    assert [r["article"]["id"] for r in stored["article"]["relatedStories"]] == [
        r["article"]["id"] for r in general["article"]["relatedStories"]
    ]


async def _as_loaded_alone(
    gql: GraphQLRunner, related: list[dict[str, Any]], selection: str
) -> None:
    """Each listed article (`selection` of it) is what the loaders read when it is asked alone:
    what came along with the list is the same record."""
    for item in related:
        alone = await gql.data(
            f"query($id: ID!) {{ article(id: $id) {{ {selection} }} }}", id=item["article"]["id"]
        )
        assert alone["article"] == item["article"]


ONLINE_PAGE = """
query($id: ID!) { article(id: $id) { title
  relatedStories(first: 5, windowDays: 31) { score article { id title source { name } } }
} }"""


async def test_an_online_ranked_list_reads_its_articles_and_their_sources_in_one_statement(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    ids = await _ingest(write_db, ARTICLES)
    await lists.drain(write_db)  # stored lists exist, but windowDays 31 is ranked online
    variables = {"id": encode_id("Article", ids[0])}
    with track_statements(record=True) as log:
        page = await gql_write.data(ONLINE_PAGE, **variables)
    related = page["article"]["relatedStories"]
    assert len({r["article"]["source"]["name"] for r in related}) >= 2
    # The parent through the article loader; the listed articles and their sources together.
    assert log.statements.count(SELECT_ARTICLES_BY_IDS) == 1, log.statements
    assert log.statements.count(related_lists.SELECT_LISTED_ARTICLES) == 1, log.statements
    assert SELECT_SOURCES_BY_IDS not in log.statements
    assert related_lists.SELECT_VALID_LISTS not in log.statements
    await _as_loaded_alone(gql_write, related, "id title source { name }")


async def test_listed_articles_taken_down_after_the_ranking_are_left_out(
    write_db: Database,
) -> None:
    ids = await _ingest(write_db, ARTICLES)
    ranked = await find_related(write_db, ids[:1], RelatedQuery(first=5, window_days=31))
    listed = [item.article_id for item in ranked[ids[0]]]
    assert len(listed) >= 2
    # Taken down between the ranking and the statement that reads the listed articles.
    await remove_articles(write_db, [listed[0]], "legal", removed_by=None)
    found = await related_lists.fetch_listed_articles(write_db, listed)
    assert set(found.articles) == set(listed[1:])
    assert {a.source_id for a in found.articles.values()} == set(found.sources)


async def test_the_general_article_page_reads_the_listed_articles_with_the_stored_list(
    gql_write: GraphQLRunner, write_db: Database
) -> None:
    ids = await _ingest(write_db, ARTICLES)
    await lists.drain(write_db)
    document = (operations_dir() / "article_page.graphql").read_text(encoding="utf-8")
    without = re.sub(r"\n    relatedStories\(first: 5\) \{.*?\n    \}", "", document, flags=re.S)
    assert without != document
    variables = {"id": encode_id("Article", ids[0])}
    with track_statements(record=True) as bare:
        await gql_write.data(without, **variables)
    with track_statements(record=True) as full:
        page = await gql_write.data(document, **variables)
    related = page["article"]["relatedStories"]
    assert related
    # The list's statement brings its articles and their sources, and the shared entities are
    # among the article's own (loaded in the same batch): the page costs one more statement.
    assert full.count == bare.count + 1, (bare.statements, full.statements)
    await _as_loaded_alone(gql_write, related, "id title publishedAt source { name }")


async def test_a_stored_list_comes_with_its_first_articles_and_their_sources(
    write_db: Database,
) -> None:
    ids = await _ingest(write_db, ARTICLES)
    await lists.drain(write_db)
    listed = [i.article_id for i in lists.decode_items((await _valid(write_db, ids[:1]))[ids[0]])]
    assert len(listed) >= 2
    stored = await related_lists.fetch_valid_lists(write_db, ids[:1], 2)
    assert sorted(stored.articles) == sorted(listed[:2])  # the first `first` only
    by_id = await write_db.fetch(
        "SELECT id, source_id FROM articles WHERE id = ANY($1::bigint[])", listed[:2]
    )
    assert {r["id"]: r["source_id"] for r in by_id} == {
        a.id: a.source_id for a in stored.articles.values()
    }
    assert set(stored.sources) == {r["source_id"] for r in by_id}
    # An empty list, and a list naming an article that is gone, still come back whole.
    async with write_db.transaction() as w:
        await related_lists.store_lists(
            w,
            [related_lists.ListRow(ids[1], "[]", [], None),
             related_lists.ListRow(ids[2], lists.encode_items([]), [-1], None)],
            [], None,
        )  # fmt: skip
        await w.execute(
            "DELETE FROM related_refresh WHERE article_id = ANY($1::bigint[])", ids[1:3]
        )
    stored = await related_lists.fetch_valid_lists(write_db, ids[1:3], 5)
    assert stored.lists == {ids[1]: "[]", ids[2]: "[]"}
    assert stored.articles == {}
    assert stored.sources == {}


async def test_the_running_service_refreshes_in_the_background(
    settings: Settings, db: Database
) -> None:
    background = replace(settings, related_refresh_percent=50, related_indexer="thread")
    item = _item(
        int(time.time() * 1000) % 10**9, "background.example", "Background refresh check",
        ARTICLES[0]["body"], "2024-12-18T22:00:00Z",
    )  # fmt: skip
    async with app_client(background, db) as http:
        response = await http.post(
            "/v1/ingest",
            content=orjson.dumps(item) + b"\n",
            headers={"content-type": "application/x-ndjson"},
        )
        assert response.status_code == 200, response.text
        (line,) = response.text.splitlines()
        article_id = decode_typed_id(orjson.loads(line)["id"], "Article")
        deadline = time.monotonic() + 20
        while article_id not in await _valid(db, [article_id]):
            assert time.monotonic() < deadline, "the background refresher did not store it"
            await asyncio.sleep(0.1)
        while not re.search(
            r"^newsgraph_related_refreshed_total [1-9]", (await http.get("/metrics")).text, re.M
        ):
            assert time.monotonic() < deadline, "the refresher reported no figures"
            await asyncio.sleep(0.1)
    await remove_articles(db, [article_id], "test cleanup", removed_by=None)


async def test_the_refresher_steps_back_while_its_process_ingests(
    write_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(lists, "_last_ingest", -lists.BUSY_SECONDS)  # no ingest lately
    assert lists.rest_after(1.0, 0.5) == pytest.approx(1.0)
    await ingest_batch(write_db, [NEWCOMER])
    assert lists.rest_after(1.0, 0.5) == pytest.approx(9.0)  # a fifth of the share


@pytest.mark.parametrize("percent", ["-1", "101", "x"])
def test_refresh_share_must_be_a_percentage(percent: str) -> None:
    with pytest.raises(ConfigError, match="NEWSGRAPH_RELATED_REFRESH_PERCENT"):
        Settings.from_environ({"NEWSGRAPH_RELATED_REFRESH_PERCENT": percent})


async def test_the_cascade_skips_lists_ranked_after_the_change(
    server_url: str, settings: Settings
) -> None:
    # Committed transactions (a rolled-back test transaction never sees its own changes as
    # committed): a list ranked after an article's change was committed already accounts for
    # it, and is not queued again by that article's cascade; one ranked before it is.
    async with (
        scratch_database(server_url, "cascade") as url,
        open_database(settings.with_database(url)) as db,
    ):
        ids = await _ingest(db, ARTICLES)
        await lists.refresh_once(db, 1)  # every change is committed; one list is ranked
        (first,) = [i for i in ids if i not in await _queued(db, ids)]
        ranked = await db.fetchval(
            "SELECT snapshot::text FROM related_lists WHERE article_id = $1", first
        )
        await lists.drain(db)  # the others name it, and their cascades skip its list
        named = await db.fetchval(
            "SELECT count(*) FROM related_lists WHERE $1 = ANY(item_ids)", first
        )
        assert named > 0
        assert ranked == await db.fetchval(
            "SELECT snapshot::text FROM related_lists WHERE article_id = $1", first
        )
        # A change committed after the lists were ranked cascades to them as before.
        (new,) = await _ingest(db, [NEWCOMER])
        await lists.refresh_once(db, 1)
        assert ids[0] in await _queued(db, [ids[0]])
        await lists.drain(db)
        assert new in await _stored(db, ids[0])
