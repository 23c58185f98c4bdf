"""Persisted queries: trusted documents by sha256, Apollo's APQ, and trusted-only mode."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest_asyncio

from service.config import Settings
from service.db.pool import Database
from service.graphql.persisted import load_trusted_documents
from service.resources import operations_dir
from tests.access_support import with_settings
from tests.support import app_client

FEED_TEXT = (operations_dir() / "feed.graphql").read_text(encoding="utf-8")
FEED_HASH = hashlib.sha256((operations_dir() / "feed.graphql").read_bytes()).hexdigest()
OTHER = "{ sources(first: 2) { edges { node { name } } } }"
OTHER_HASH = hashlib.sha256(OTHER.encode()).hexdigest()


def _persisted(digest: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest}}


def _code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


@pytest_asyncio.fixture
async def trusted_only(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(with_settings(settings, trusted_documents_only=True), db) as http:
        yield http


def test_every_operation_file_is_a_trusted_document_under_its_sha256() -> None:
    documents = load_trusted_documents()
    assert {d.name for d in documents.values()} == {
        p.stem for p in operations_dir().glob("*.graphql")
    }
    assert documents[FEED_HASH].text == FEED_TEXT


async def test_a_trusted_document_runs_by_its_hash_over_post_and_get(
    client: httpx.AsyncClient,
) -> None:
    post = await client.post(
        "/graphql", json={"extensions": _persisted(FEED_HASH), "variables": {"first": 2}}
    )
    assert post.status_code == 200
    assert len(post.json()["data"]["articles"]["edges"]) == 2
    get = await client.get(
        "/graphql",
        params={
            "extensions": orjson.dumps(_persisted(FEED_HASH)).decode(),
            "variables": '{"first": 2}',
        },
    )
    assert get.status_code == 200
    assert get.json()["data"] == post.json()["data"]


async def test_apq_unknown_hash_then_register_then_hash_alone(client: httpx.AsyncClient) -> None:
    digest = hashlib.sha256(f"{OTHER} # apq".encode()).hexdigest()
    miss = await client.post("/graphql", json={"extensions": _persisted(digest)})
    assert miss.status_code == 200
    assert _code(miss) == "PERSISTED_QUERY_NOT_FOUND"
    assert miss.json()["errors"][0]["message"] == "PersistedQueryNotFound"
    register = await client.post(
        "/graphql", json={"query": f"{OTHER} # apq", "extensions": _persisted(digest)}
    )
    assert register.json()["data"]["sources"]["edges"]
    hit = await client.post("/graphql", json={"extensions": _persisted(digest)})
    assert hit.json()["data"] == register.json()["data"]


async def test_apq_refuses_a_hash_that_does_not_match_the_query(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql", json={"query": OTHER, "extensions": _persisted("0" * 64)}
    )
    assert _code(response) == "BAD_INPUT"
    assert "does not match" in response.json()["errors"][0]["message"]
    bad_version = await client.post(
        "/graphql",
        json={"extensions": {"persistedQuery": {"version": 2, "sha256Hash": FEED_HASH}}},
    )
    assert _code(bad_version) == "BAD_INPUT"


async def test_an_unknown_hash_with_an_operation_name_is_still_a_graphql_error(
    client: httpx.AsyncClient,
) -> None:
    response = await client.post(
        "/graphql", json={"operationName": "Feed", "extensions": _persisted("1" * 64)}
    )
    assert response.status_code == 200
    assert _code(response) == "PERSISTED_QUERY_NOT_FOUND"


async def test_trusted_only_mode_runs_trusted_documents_only(
    trusted_only: httpx.AsyncClient,
) -> None:
    by_hash = await trusted_only.post(
        "/graphql", json={"extensions": _persisted(FEED_HASH), "variables": {"first": 1}}
    )
    assert by_hash.json()["data"]["articles"]["edges"]
    by_text = await trusted_only.post("/graphql", json={"query": FEED_TEXT})
    assert "errors" not in by_text.json()
    other = await trusted_only.post("/graphql", json={"query": OTHER})
    assert _code(other) == "PERSISTED_QUERY_NOT_ALLOWED"
    assert "NEWSGRAPH_TRUSTED_DOCUMENTS_ONLY" in other.json()["errors"][0]["message"]
    assert other.json()["data"] is None
    register = await trusted_only.post(
        "/graphql", json={"query": OTHER, "extensions": _persisted(OTHER_HASH)}
    )
    assert _code(register) == "PERSISTED_QUERY_NOT_ALLOWED"
    unknown = await trusted_only.post("/graphql", json={"extensions": _persisted(OTHER_HASH)})
    assert _code(unknown) == "PERSISTED_QUERY_NOT_ALLOWED"
