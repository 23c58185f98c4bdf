"""Query.changes, Mutation.deleteArticles and restoreArticles, over a database that commits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from service.auth import LOCAL, Principal, acting_as
from service.config import Settings
from service.db.pool import Database
from service.ids import encode_id
from service.ingest.pipeline import ingest_batch
from tests.access_support import make_key
from tests.conftest import GraphQLRunner
from tests.factories import article_input
from tests.feed_support import scratch_pool

CHANGES = """
query($first: Int, $after: String, $since: DateTime) {
  changes(first: $first, after: $after, since: $since) {
    edges { cursor node { seq kind changedAt article { id title } tombstone { id url urls reason removedAt } } }
    pageInfo { hasNextPage endCursor }
  }
}"""

DELETE = """
mutation($ids: [ID!], $urls: [String!], $reason: String!) {
  deleteArticles(ids: $ids, urls: $urls, reason: $reason) {
    index status tombstone { id canonicalUrl urls reason } errors { path code message }
  }
}"""

RESTORE = "mutation($urls: [String!]!) { restoreArticles(urls: $urls) { id restoredAt } }"

INGEST = """
mutation($a: [ArticleInput!]!) { ingestArticles(articles: $a) { status errors { code message } } }
"""


@pytest_asyncio.fixture(scope="module")
async def cdb(server_url: str, settings: Settings) -> AsyncIterator[Database]:
    async with scratch_pool(server_url, "gql_changes", settings) as (_, database):
        yield database


@pytest.fixture
def run(settings: Settings, cdb: Database) -> GraphQLRunner:
    return GraphQLRunner(settings, cdb)


async def _ingest(
    db: Database, *items: dict[str, Any], writer: Principal | None = None
) -> list[str]:
    results = await ingest_batch(db, list(items), writer=writer)
    assert all(r.article_id is not None for r in results), results
    return [encode_id("Article", r.article_id) for r in results if r.article_id is not None]


async def _all_changes(run: GraphQLRunner, first: int = 2) -> list[dict[str, Any]]:
    nodes, after = [], None
    while True:
        page = (await run.data(CHANGES, first=first, after=after))["changes"]
        nodes += [edge["node"] for edge in page["edges"]]
        if not page["pageInfo"]["hasNextPage"]:
            return nodes
        after = page["pageInfo"]["endCursor"]


async def test_the_feed_pages_in_sequence_and_an_old_cursor_keeps_working(
    run: GraphQLRunner, cdb: Database
) -> None:
    [first_id] = await _ingest(cdb, article_input(title="One"))
    page = (await run.data(CHANGES, first=100))["changes"]
    cursor = page["pageInfo"]["endCursor"]
    assert page["edges"][-1]["node"]["article"]["id"] == first_id
    # Nothing new: an empty page that hands the same cursor back.
    empty = (await run.data(CHANGES, after=cursor))["changes"]
    assert empty == {"edges": [], "pageInfo": {"hasNextPage": False, "endCursor": cursor}}
    [second_id] = await _ingest(cdb, article_input(title="Two"))
    later = (await run.data(CHANGES, after=cursor))["changes"]
    assert [e["node"]["article"]["id"] for e in later["edges"]] == [second_id]
    assert [e["node"]["kind"] for e in later["edges"]] == ["CREATED"]
    seqs = [n["seq"] for n in await _all_changes(run)]
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    since = later["edges"][0]["node"]["changedAt"]
    from_since = (await run.data(CHANGES, since=since))["changes"]["edges"]
    assert from_since[0]["node"]["article"]["id"] == second_id


@pytest.mark.parametrize(
    ("variables", "code"),
    [
        ({"after": "bm90LWEtY3Vyc29y"}, "BAD_CURSOR"),
        (
            {"after": "eyJrIjoibmV3ZXN0IiwidiI6WyIyMDI1LTAxLTAxVDAwOjAwOjAwKzAwOjAwIiwxXX0"},
            "BAD_CURSOR",
        ),
        ({"first": 101}, "LIMIT_EXCEEDED"),
        ({"first": 0}, "BAD_INPUT"),
        ({"since": "2025-01-01T00:00:00"}, "BAD_INPUT"),
    ],
)
async def test_bad_feed_arguments_are_client_errors(
    run: GraphQLRunner, variables: dict[str, Any], code: str
) -> None:
    result = await run(CHANGES, **variables)
    assert result.errors is not None
    assert result.errors[0].extensions is not None
    assert result.errors[0].extensions["code"] == code


async def test_a_removed_article_vanishes_everywhere_and_the_feed_says_removed(
    run: GraphQLRunner, cdb: Database
) -> None:
    item = article_input(
        url="https://gone.example/story?utm_medium=x",
        canonicalUrl="https://gone.example/canonical",
        title="Uniquely searchable zebrafinch",
        source={"domain": "gone.example", "name": "Gone"},
        entities=[{"name": "Gone Person", "kind": "PERSON"}],
        publishedAt="2025-06-01T00:00:00Z",
    )
    [older] = await _ingest(cdb, article_input(publishedAt="2025-05-01T00:00:00Z"))
    [article_id] = await _ingest(cdb, item)
    feed = """query($after: String) {
      articles(first: 1, after: $after, filter: {publishedBefore: "2025-06-02T00:00:00Z"}) {
        edges { cursor node { id } }
      }
    }"""
    first_page = (await run.data(feed))["articles"]["edges"]
    assert first_page[0]["node"]["id"] == article_id
    cursor_of_removed = first_page[0]["cursor"]
    with acting_as(LOCAL):
        result = await run.data(
            DELETE, urls=["https://gone.example/story"], ids=["bm9wZQ", encode_id("Article", 10**12)],
            reason="court order",
        )  # fmt: skip
    removed = result["deleteArticles"]
    assert [(r["index"], r["status"]) for r in removed] == [
        (0, "REJECTED"),
        (1, "NOT_FOUND"),
        (2, "REMOVED"),
    ]
    assert removed[0]["errors"][0]["code"] == "BAD_INPUT"
    assert removed[0]["errors"][0]["path"] == "ids[0]"
    assert removed[2]["tombstone"]["id"] == article_id
    assert removed[2]["tombstone"]["canonicalUrl"] == "https://gone.example/canonical"
    assert removed[2]["tombstone"]["reason"] == "court order"
    reads = await run.data(
        """query($id: ID!) {
          byId: article(id: $id) { id }
          byUrl: article(url: "https://gone.example/story") { id }
          node(id: $id) { id }
          search: articles(search: "zebrafinch") { totalCount edges { node { id } } }
          source(domain: "gone.example") { articles { totalCount edges { node { id } } } }
          entity(slug: "gone-person") { articleCount articles { edges { node { id } } } }
        }""",
        id=article_id,
    )
    assert reads["byId"] is None
    assert reads["byUrl"] is None
    assert reads["node"] is None
    assert reads["search"] == {"totalCount": 0, "edges": []}
    assert reads["source"]["articles"] == {"totalCount": 0, "edges": []}
    assert reads["entity"]["articleCount"] == 0
    assert reads["entity"]["articles"]["edges"] == []
    # A cursor issued for the removed article still continues the list after it.
    after_removed = (await run.data(feed, after=cursor_of_removed))["articles"]["edges"]
    assert after_removed[0]["node"]["id"] == older
    last = (await _all_changes(run))[-1]
    assert last["kind"] == "REMOVED"
    assert last["article"] is None
    assert last["tombstone"]["id"] == article_id
    assert set(last["tombstone"]["urls"]) == {
        "https://gone.example/story",
        "https://gone.example/canonical",
    }
    with acting_as(LOCAL):
        again = await run.data(DELETE, ids=[article_id], reason="again")
    assert again["deleteArticles"][0]["status"] == "ALREADY_REMOVED"


async def test_re_ingesting_a_removed_url_is_refused_until_an_admin_restores_it(
    run: GraphQLRunner, cdb: Database, settings: Settings
) -> None:
    item = article_input(url="https://gone.example/restorable")
    [article_id] = await _ingest(cdb, item)
    with acting_as(LOCAL):
        await run.data(DELETE, ids=[article_id], reason="legal")
        refused = (await run.data(INGEST, a=[item]))["ingestArticles"][0]
    assert refused["status"] == "REJECTED"
    assert refused["errors"][0]["code"] == "REMOVED"
    assert "taken down" in refused["errors"][0]["message"]
    _, ingest_key = await make_key(cdb, settings, "ingest", sources=("factory.example",))
    with acting_as(ingest_key):
        denied = await run(RESTORE, urls=[item["url"]])
    assert denied.errors is not None
    assert denied.errors[0].extensions == {"code": "FORBIDDEN"}
    with acting_as(LOCAL):
        [restored] = (await run.data(RESTORE, urls=[item["url"]]))["restoreArticles"]
        assert restored["id"] == article_id
        assert restored["restoredAt"]
        again = (await run.data(INGEST, a=[item]))["ingestArticles"][0]
    assert again["status"] == "CREATED"


async def test_takedown_roles(run: GraphQLRunner, cdb: Database, settings: Settings) -> None:
    _, reader = await make_key(cdb, settings, "reader")
    _, owner = await make_key(cdb, settings, "ingest", sources=("factory.example",))
    _, other = await make_key(cdb, settings, "ingest", sources=("factory.example",))
    [mine] = await _ingest(cdb, article_input(), writer=owner)
    [theirs] = await _ingest(cdb, article_input(), writer=other)
    with acting_as(reader):
        refused = await run(DELETE, ids=[mine], reason="no")
    assert refused.errors is not None
    assert refused.errors[0].extensions == {"code": "FORBIDDEN"}
    assert "needs the ingest role" in refused.errors[0].message
    with acting_as(owner):
        results = (await run.data(DELETE, ids=[mine, theirs], reason="withdrawn"))["deleteArticles"]
    assert [r["status"] for r in results] == ["REMOVED", "REJECTED"]
    assert results[1]["errors"][0]["code"] == "FORBIDDEN"
    assert "another API key" in results[1]["errors"][0]["message"]
    with acting_as(LOCAL):
        still = await run.data("query($id: ID!) { article(id: $id) { id } }", id=theirs)
        assert still["article"] == {"id": theirs}
        empty = await run(DELETE, reason="nothing")
        assert empty.errors is not None
        assert empty.errors[0].extensions == {"code": "BAD_INPUT"}
