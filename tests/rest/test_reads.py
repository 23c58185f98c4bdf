"""REST reads: GraphQL's field names, ids and cursors; cacheable; clear JSON errors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio

from service.auth import LOCAL, acting_as
from service.config import Settings
from service.db.pool import Database, track_statements
from service.ids import encode_id
from service.ingest.pipeline import ingest_batch
from service.rest.reads_openapi import OPENAPI_PATHS
from tests.conftest import GraphQLRunner
from tests.factories import article_input
from tests.feed_support import scratch_pool
from tests.support import app_client

GRAPHQL_ARTICLE = """
query($id: ID!) {
  article(id: $id) {
    id url canonicalUrl title summary body authors { name } publishedAt publishedAtEstimated
    updatedAt language section tags image { url credit caption alt width height }
    source { id name domain country language }
  }
}"""


async def _first_article(client: httpx.AsyncClient) -> dict[str, Any]:
    page = (await client.get("/v1/articles", params={"limit": 1})).json()
    node: dict[str, Any] = page["edges"][0]["node"]
    return node


async def test_an_article_by_id_has_the_graphql_fields(
    client: httpx.AsyncClient, gql: GraphQLRunner
) -> None:
    listed = await _first_article(client)
    response = await client.get(f"/v1/articles/{listed['id']}")
    assert response.status_code == 200
    article = response.json()
    expected = (await gql.data(GRAPHQL_ARTICLE, id=listed["id"]))["article"]
    source = article.pop("source")
    assert {k: v for k, v in source.items() if k != "articleCount"} == expected.pop("source")
    assert {k: article[k] for k in expected} == expected
    assert article["entities"] == listed["entities"]
    assert "body" not in listed


async def test_an_article_by_any_of_its_urls(client: httpx.AsyncClient) -> None:
    listed = await _first_article(client)
    for url in (listed["url"], listed["url"] + "?utm_source=newsletter#top"):
        response = await client.get("/v1/articles", params={"url": url})
        assert response.status_code == 200
        assert response.json()["id"] == listed["id"]


async def test_lists_page_with_cursors_that_graphql_accepts(
    client: httpx.AsyncClient, gql: GraphQLRunner
) -> None:
    first = (await client.get("/v1/articles", params={"limit": 3, "language": "en"})).json()
    assert len(first["edges"]) == 3
    assert first["pageInfo"]["hasNextPage"]
    cursor = first["pageInfo"]["endCursor"]
    second = (
        await client.get("/v1/articles", params={"limit": 3, "language": "en", "cursor": cursor})
    ).json()
    graphql = await gql.data(
        'query($after: String) { articles(first: 3, after: $after, filter: {languages: ["en"]}) '
        "{ edges { cursor node { id } } } }",
        after=cursor,
    )
    assert [e["node"]["id"] for e in second["edges"]] == [
        e["node"]["id"] for e in graphql["articles"]["edges"]
    ]
    assert [e["cursor"] for e in second["edges"]] == [
        e["cursor"] for e in graphql["articles"]["edges"]
    ]
    assert not {e["node"]["id"] for e in first["edges"]} & {
        e["node"]["id"] for e in second["edges"]
    }


async def test_filters(client: httpx.AsyncClient) -> None:
    listed = await _first_article(client)
    domain = listed["source"]["domain"]
    by_source = (await client.get("/v1/articles", params={"source": domain, "limit": 50})).json()
    assert by_source["edges"]
    assert {e["node"]["source"]["domain"] for e in by_source["edges"]} == {domain}
    by_id = (
        await client.get("/v1/articles", params={"source": listed["source"]["id"], "limit": 50})
    ).json()
    assert by_id == by_source
    entity = listed["entities"][0]["entity"]
    by_entity = (await client.get("/v1/articles", params={"entity": entity["slug"]})).json()
    assert all(
        entity["id"] in {link["entity"]["id"] for link in e["node"]["entities"]}
        for e in by_entity["edges"]
    )
    window = {"since": "2025-10-13", "until": "2025-10-14T00:00:00+00:00", "limit": "100"}
    dated = (await client.get("/v1/articles", params=window)).json()
    assert dated["edges"]
    assert all(e["node"]["publishedAt"].startswith("2025-10-13") for e in dated["edges"])
    unknown = (await client.get("/v1/articles", params={"source": "nowhere.example"})).json()
    assert unknown["edges"] == []


async def test_a_list_costs_the_same_statements_whatever_its_size(
    client: httpx.AsyncClient,
) -> None:
    counts = []
    for limit in (1, 50):
        with track_statements() as log:
            assert (await client.get("/v1/articles", params={"limit": limit})).status_code == 200
        counts.append(log.count)
    assert counts[0] == counts[1] <= 4


async def test_entities_sources_and_related(client: httpx.AsyncClient) -> None:
    entities = (await client.get("/v1/entities", params={"search": "no", "limit": 5})).json()
    assert entities["edges"]
    assert {"id", "name", "slug", "kind", "articleCount"} <= set(entities["edges"][0]["node"])
    sources = (await client.get("/v1/sources", params={"limit": 2})).json()
    more = (
        await client.get(
            "/v1/sources", params={"limit": 2, "cursor": sources["pageInfo"]["endCursor"]}
        )
    ).json()
    names = [e["node"]["name"] for e in sources["edges"] + more["edges"]]
    assert names == sorted(names)
    listed = await _first_article(client)
    path = f"/v1/articles/{listed['id']}/related"
    related = (await client.get(path, params={"windowDays": 3650})).json()["relatedStories"]
    assert related, "the demo article has related coverage"
    assert listed["id"] not in {r["article"]["id"] for r in related}
    assert {r["reasons"]["relation"] for r in related} <= {"SAME_STORY", "DUPLICATE", "RELATED"}
    # The same list, in the same order, as GraphQL's relatedStories.
    query = """query($id: ID!) { node(id: $id) { ... on Article {
        relatedStories(first: 10, windowDays: 3650) { article { id } score } } } }"""
    answer = await client.post("/graphql", json={"query": query, "variables": {"id": listed["id"]}})
    via_graphql = answer.json()["data"]["node"]["relatedStories"]
    assert [r["article"]["id"] for r in related] == [r["article"]["id"] for r in via_graphql]
    for bad in ({"limit": 0}, {"limit": 51}, {"windowDays": -1}, {"windowDays": "x"}):
        refused = await client.get(path, params=bad)
        assert refused.status_code == 400, bad


async def test_answers_are_cacheable(client: httpx.AsyncClient) -> None:
    listed = await _first_article(client)
    path = f"/v1/articles/{listed['id']}"
    first = await client.get(path)
    etag = first.headers["etag"]
    assert first.headers["cache-control"] == "public, max-age=300"
    assert first.headers["vary"] == "Authorization"
    again = await client.get(path, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    feed = await client.get("/v1/changes")
    assert feed.headers["cache-control"] == "public, max-age=0"
    unchanged = await client.get("/v1/changes", headers={"If-None-Match": feed.headers["etag"]})
    assert unchanged.status_code == 304


@pytest.mark.parametrize(
    ("path", "params", "status", "code"),
    [
        ("/v1/articles", {"cursor": "not-a-cursor"}, 400, "BAD_CURSOR"),
        ("/v1/articles", {"order": "oldest", "cursor": None}, 400, "BAD_CURSOR"),
        ("/v1/articles", {"limit": "101"}, 400, "LIMIT_EXCEEDED"),
        ("/v1/articles", {"limit": "0"}, 400, "BAD_INPUT"),
        ("/v1/articles", {"limit": "ten"}, 400, "BAD_INPUT"),
        ("/v1/articles", {"since": "2025-13-01"}, 400, "BAD_INPUT"),
        ("/v1/articles", {"until": "2025-01-01T00:00:00"}, 400, "BAD_INPUT"),
        ("/v1/articles", {"url": "https://nowhere.example/x"}, 404, "NOT_FOUND"),
        ("/v1/articles", {"url": "ftp://x"}, 400, "BAD_INPUT"),
        ("/v1/articles/bm9wZQ", {}, 400, "BAD_INPUT"),
        (f"/v1/articles/{encode_id('Source', 1)}", {}, 400, "BAD_INPUT"),
        (f"/v1/articles/{encode_id('Article', 10**30)}", {}, 400, "BAD_INPUT"),
        (f"/v1/articles/{encode_id('Article', 10**12)}", {}, 404, "NOT_FOUND"),
        (f"/v1/articles/{encode_id('Article', 10**12)}/related", {}, 404, "NOT_FOUND"),
        ("/v1/entities", {"kind": "ROBOT"}, 400, "BAD_INPUT"),
        ("/v1/entities", {"search": "x" * 101}, 400, "LIMIT_EXCEEDED"),
        ("/v1/sources", {"cursor": "e30"}, 400, "BAD_CURSOR"),
        ("/v1/changes", {"cursor": "e30"}, 400, "BAD_CURSOR"),
        ("/v1/changes", {"since": "yesterday"}, 400, "BAD_INPUT"),
    ],
)
async def test_client_mistakes_are_clear_json_errors(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], status: int, code: str
) -> None:
    if "cursor" in params and params["cursor"] is None:  # a cursor of another order
        newest = (await client.get("/v1/articles", params={"limit": 1})).json()
        params = {**params, "cursor": newest["pageInfo"]["endCursor"]}
    response = await client.get(path, params=params)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.json()["error"]["message"]
    assert response.headers["cache-control"] == "no-store"


def test_every_read_route_is_in_the_openapi_document() -> None:
    assert set(OPENAPI_PATHS) == {
        "/v1/articles",
        "/v1/articles/{id}",
        "/v1/articles/{id}/related",
        "/v1/entities",
        "/v1/sources",
        "/v1/changes",
    }


@pytest_asyncio.fixture(scope="module")
async def scratch_db(server_url: str, settings: Settings) -> AsyncIterator[Database]:
    async with scratch_pool(server_url, "rest_reads", settings) as (_, database):
        yield database


async def test_after_a_takedown_reads_answer_410_and_etags_change(
    scratch_db: Database, settings: Settings
) -> None:
    item = article_input(url="https://legal.example/story", title="To be removed")
    stored, _ = await ingest_batch(scratch_db, [item, article_input()])
    assert stored.article_id is not None
    article_id = encode_id("Article", stored.article_id)
    run = GraphQLRunner(settings, scratch_db)
    async with app_client(settings, scratch_db) as http:
        page = await http.get("/v1/articles")
        single = await http.get(f"/v1/articles/{article_id}")
        graphql_get = {"query": "query Feed { articles { edges { node { title } } } }"}
        cached = await http.get("/graphql", params=graphql_get)
        assert "To be removed" in cached.text
        assert single.status_code == 200
        with acting_as(LOCAL):
            await run.data(
                'mutation($id: ID!) { deleteArticles(ids: [$id], reason: "court") { status } }',
                id=article_id,
            )
        gone = await http.get(
            f"/v1/articles/{article_id}", headers={"If-None-Match": single.headers["etag"]}
        )
        assert gone.status_code == 410
        assert gone.json()["error"]["code"] == "REMOVED"
        assert gone.json()["tombstone"]["reason"] == "court"
        by_url = await http.get("/v1/articles", params={"url": "https://legal.example/story"})
        assert by_url.status_code == 410
        after = await http.get("/v1/articles", headers={"If-None-Match": page.headers["etag"]})
        assert after.status_code == 200
        assert after.headers["etag"] != page.headers["etag"]
        assert "To be removed" in page.text
        assert "To be removed" not in after.text
        revalidated = await http.get(
            "/graphql", params=graphql_get, headers={"If-None-Match": cached.headers["etag"]}
        )
        assert revalidated.status_code == 200
        assert "To be removed" not in revalidated.text
        changes = (await http.get("/v1/changes", params={"limit": 100})).json()
        last = changes["edges"][-1]["node"]
        assert (last["kind"], last["article"], last["tombstone"]["id"]) == (
            "REMOVED",
            None,
            article_id,
        )
