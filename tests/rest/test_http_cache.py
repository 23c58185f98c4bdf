"""HTTP caching of GraphQL queries over GET: Cache-Control, a strong ETag, and 304."""

from __future__ import annotations

import dataclasses
import hashlib

import httpx
import orjson

from service.config import Settings
from service.db.pool import Database
from service.resources import operations_dir
from tests.access_support import bearer, make_key
from tests.support import app_client

QUERY = "{ sources(first: 2) { edges { node { name } } } }"
FEED_HASH = hashlib.sha256((operations_dir() / "feed.graphql").read_bytes()).hexdigest()


async def test_a_get_query_has_a_strong_etag_and_a_public_max_age(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/graphql", params={"query": QUERY})
    assert response.status_code == 200
    assert response.headers["etag"] == f'"{hashlib.sha256(response.content).hexdigest()}"'
    assert response.headers["cache-control"] == "public, max-age=30"
    assert response.headers["vary"] == "Authorization"


async def test_if_none_match_gives_304_without_a_body(client: httpx.AsyncClient) -> None:
    first = await client.get("/graphql", params={"query": QUERY})
    again = await client.get(
        "/graphql", params={"query": QUERY}, headers={"If-None-Match": first.headers["etag"]}
    )
    assert again.status_code == 304
    assert again.content == b""
    assert again.headers["etag"] == first.headers["etag"]
    weak = await client.get(
        "/graphql",
        params={"query": QUERY},
        headers={"If-None-Match": 'W/"x", ' + first.headers["etag"]},
    )
    assert weak.status_code == 304
    stale = await client.get("/graphql", params={"query": QUERY}, headers={"If-None-Match": '"x"'})
    assert stale.status_code == 200


async def test_a_304_carries_the_rate_limit_headers(settings: Settings, db: Database) -> None:
    public = dataclasses.replace(settings, auth="required", anonymous_reads=True)
    async with app_client(public, db) as client:
        first = await client.get("/graphql", params={"query": QUERY})
        again = await client.get(
            "/graphql", params={"query": QUERY}, headers={"If-None-Match": first.headers["etag"]}
        )
    assert again.status_code == 304
    assert "ratelimit-remaining" in again.headers


async def test_max_age_follows_the_operation(client: httpx.AsyncClient) -> None:
    by_name = await client.get(
        "/graphql",
        params={"query": "query ArticlePage { sources(first: 1) { edges { cursor } } }"},
    )
    assert by_name.headers["cache-control"] == "public, max-age=300"
    persisted = await client.get(
        "/graphql",
        params={
            "extensions": orjson.dumps(
                {"persistedQuery": {"version": 1, "sha256Hash": FEED_HASH}}
            ).decode()
        },
    )
    assert persisted.headers["cache-control"] == "public, max-age=30"


async def test_keyed_requests_are_private(settings: Settings, write_db: Database) -> None:
    token, _ = await make_key(write_db, settings, "reader")
    async with app_client(settings, write_db) as http:
        response = await http.get("/graphql", params={"query": QUERY}, headers=bearer(token))
    assert response.headers["cache-control"] == "private, max-age=30"


async def test_errors_and_posts_are_not_cached(client: httpx.AsyncClient) -> None:
    error = await client.get("/graphql", params={"query": "{ nope }"})
    assert error.headers["cache-control"] == "no-store"
    assert "etag" not in error.headers
    post = await client.post("/graphql", json={"query": QUERY})
    assert "etag" not in post.headers
    mutation = await client.get(
        "/graphql", params={"query": 'mutation { mergeEntities(into: "x", from: []) { id } }'}
    )
    assert mutation.status_code == 400  # mutations are never run over GET
