"""API keys, roles, key scoping at ingest, 401 vs 403, and rate limits by cost."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
import pytest_asyncio

from service.auth import (
    ANONYMOUS,
    DEV_SECRET,
    LOCAL,
    KeyStore,
    Principal,
    Role,
    domain_allowed,
    generate_token,
    hash_token,
    require,
    server_secret,
)
from service.config import ConfigError, Settings
from service.db.api_keys import revoke_api_key
from service.db.pool import Database
from service.errors import Forbidden, Unauthenticated
from service.ingest.pipeline import ingest_batch
from tests.access_support import bearer, make_key, with_settings
from tests.factories import article_input
from tests.support import app_client

INGEST = """
mutation($a: [ArticleInput!]!) {
  ingestArticles(articles: $a) { index status errors { path code message } article { id } }
}"""
UPSERT = 'mutation { upsertEntities(entities: [{name: "Test Entity Q", kind: OTHER}]) { id } }'
READ = "{ articles(first: 2) { edges { node { title } } } }"


def partner_article(url: str, **overrides: Any) -> dict[str, Any]:
    """An article whose source is its URL's domain."""
    return article_input(url=url, source=None, **overrides)


# --- tokens, secrets, roles ---------------------------------------------------------------


def test_tokens_are_random_256_bit_with_a_recognisable_prefix() -> None:
    tokens = {generate_token() for _ in range(100)}
    assert len(tokens) == 100
    assert all(re.fullmatch(r"ng_[A-Za-z0-9_-]{43}", t) for t in tokens)


def test_the_stored_hash_is_an_hmac_under_the_server_secret() -> None:
    token = generate_token()
    assert hash_token(b"a" * 32, token) == hash_token(b"a" * 32, token)
    assert hash_token(b"a" * 32, token) != hash_token(b"b" * 32, token)
    assert len(hash_token(b"a" * 32, token)) == 32


def test_production_needs_a_secret_of_at_least_32_bytes() -> None:
    with pytest.raises(ConfigError, match="NEWSGRAPH_KEY_SECRET must be set in production"):
        server_secret(Settings.from_environ({"NEWSGRAPH_ENV": "production"}))
    with pytest.raises(ConfigError, match="at least 32 bytes, got 5"):
        server_secret(Settings.from_environ({"NEWSGRAPH_KEY_SECRET": "short"}))
    long_secret = "x" * 40
    production = {"NEWSGRAPH_ENV": "production", "NEWSGRAPH_KEY_SECRET": long_secret}
    assert server_secret(Settings.from_environ(production)) == long_secret.encode()
    assert server_secret(Settings.from_environ({})) == DEV_SECRET  # development: fixed, warned


def test_roles_are_ordered_and_each_refusal_says_why() -> None:
    reader = Principal(1, Role.READER, name="app")
    require(reader, Role.READER)
    require(LOCAL, Role.ADMIN)
    require(Principal(2, Role.ADMIN), Role.INGEST)
    with pytest.raises(Forbidden, match="needs the ingest role; the API key 'app' has the reader"):
        require(reader, Role.INGEST)
    with pytest.raises(Unauthenticated, match="needs an API key with the reader role"):
        require(ANONYMOUS, Role.READER)


def test_an_ingest_key_covers_its_domains_and_their_subdomains() -> None:
    assert domain_allowed({"nrk.no"}, "nrk.no")
    assert domain_allowed({"nrk.no"}, "www.nrk.no")
    assert domain_allowed({"nrk.no"}, "p3.nrk.no")
    assert not domain_allowed({"nrk.no"}, "notnrk.no")
    assert not domain_allowed({"nrk.no"}, "nrk.no.evil.example")
    assert not domain_allowed(set(), "nrk.no")


# --- key lookup ---------------------------------------------------------------------------


async def test_keys_resolve_to_their_principal_and_bad_ones_are_refused(
    write_db: Database, settings: Settings
) -> None:
    token, principal = await make_key(write_db, settings, "ingest", sources=("a.example",))
    store = KeyStore(write_db, server_secret(settings), ttl=5)
    assert await store.authenticate(token) == principal
    with pytest.raises(Unauthenticated, match="not valid"):
        await store.authenticate(generate_token())
    with pytest.raises(Unauthenticated, match="malformed"):
        await store.authenticate("not-a-key")
    last_used = await write_db.fetchval(
        "SELECT last_used_at FROM api_keys WHERE id = $1", principal.key_id
    )
    assert last_used is not None


async def test_revocation_takes_effect_within_the_cache_ttl(
    write_db: Database, settings: Settings
) -> None:
    token, principal = await make_key(write_db, settings, "reader", name="revoked soon")
    assert principal.key_id is not None
    store = KeyStore(write_db, server_secret(settings), ttl=0.3)
    await store.authenticate(token)
    await revoke_api_key(write_db, principal.key_id)
    assert await store.authenticate(token) == principal  # still cached
    await asyncio.sleep(0.35)
    with pytest.raises(Unauthenticated, match="'revoked soon' was revoked"):
        await store.authenticate(token)


# --- over HTTP: 401 vs 403 ----------------------------------------------------------------


@pytest_asyncio.fixture
async def keys(write_db: Database, settings: Settings) -> dict[str, tuple[str, Principal]]:
    return {
        "reader": await make_key(write_db, settings, "reader"),
        "ingest": await make_key(write_db, settings, "ingest", sources=("a.example",)),
        "other": await make_key(write_db, settings, "ingest", sources=("a.example",)),
        "admin": await make_key(write_db, settings, "admin"),
    }


@pytest_asyncio.fixture
async def required(settings: Settings, write_db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app with NEWSGRAPH_AUTH=required and anonymous reads allowed."""
    strict = with_settings(settings, auth="required", anonymous_reads=True)
    async with app_client(strict, write_db) as http:
        yield http


async def _post(
    http: httpx.AsyncClient, query: str, token: str | None = None, **variables: Any
) -> httpx.Response:
    headers = bearer(token) if token else {}
    return await http.post(
        "/graphql", json={"query": query, "variables": variables}, headers=headers
    )


def _code(response: httpx.Response) -> str:
    return str(response.json()["errors"][0]["extensions"]["code"])


async def test_without_anonymous_reads_every_request_needs_a_key(
    settings: Settings, write_db: Database
) -> None:
    strict = with_settings(settings, auth="required", anonymous_reads=False)
    async with app_client(strict, write_db) as http:
        response = await _post(http, READ)
        assert response.status_code == 401
        assert _code(response) == "UNAUTHENTICATED"
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert (await http.get("/openapi.json")).status_code == 401
        assert (await http.get("/healthz")).status_code == 200  # probes carry no keys


async def test_a_bad_key_is_401_even_with_auth_off(client: httpx.AsyncClient) -> None:
    response = await _post(client, READ, generate_token())
    assert response.status_code == 401
    assert _code(response) == "UNAUTHENTICATED"
    assert "not valid" in response.json()["errors"][0]["message"]
    other_scheme = await client.post(
        "/graphql", json={"query": READ}, headers={"Authorization": "Basic abc"}
    )
    assert other_scheme.status_code == 401
    rest = await client.get("/openapi.json", headers=bearer("ng_nope"))
    assert rest.status_code == 401
    assert rest.json()["error"]["code"] == "UNAUTHENTICATED"


async def test_anonymous_reads_are_allowed_but_writes_need_a_key(
    required: httpx.AsyncClient,
) -> None:
    read = await _post(required, READ)
    assert read.status_code == 200
    assert read.json()["data"]["articles"]["edges"]
    write = await _post(required, INGEST, a=[article_input()])
    assert write.status_code == 401
    assert _code(write) == "UNAUTHENTICATED"
    assert "ingest role" in write.json()["errors"][0]["message"]


@pytest.mark.parametrize(
    ("role", "query", "status", "code"),
    [
        ("reader", INGEST, 403, "FORBIDDEN"),
        ("ingest", INGEST, 200, None),
        ("admin", INGEST, 200, None),
        ("reader", UPSERT, 403, "FORBIDDEN"),
        ("ingest", UPSERT, 403, "FORBIDDEN"),
        ("admin", UPSERT, 200, None),
        ("reader", READ, 200, None),
    ],
)
async def test_each_operation_needs_its_role(
    required: httpx.AsyncClient,
    keys: dict[str, tuple[str, Principal]],
    role: str,
    query: str,
    status: int,
    code: str | None,
) -> None:
    variables = {"a": [partner_article(url="https://a.example/role-test")]} if "$a" in query else {}
    response = await _post(required, query, keys[role][0], **variables)
    assert response.status_code == status, response.text
    if code is None:
        assert "errors" not in response.json()
    else:
        assert _code(response) == code
        assert f"the {role} role" in response.json()["errors"][0]["message"]


async def test_merge_entities_needs_an_admin(
    required: httpx.AsyncClient, keys: dict[str, tuple[str, Principal]]
) -> None:
    merge = 'mutation { mergeEntities(into: "RW50aXR5OjE", from: ["RW50aXR5OjI"]) { id } }'
    response = await _post(required, merge, keys["ingest"][0])
    assert (response.status_code, _code(response)) == (403, "FORBIDDEN")


def _ndjson(*items: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(i) + b"\n" for i in items)


async def test_the_ingest_endpoint_answers_401_and_403_as_json(
    required: httpx.AsyncClient, keys: dict[str, tuple[str, Principal]]
) -> None:
    body = _ndjson(partner_article(url="https://a.example/ndjson"))
    ndjson = {"Content-Type": "application/x-ndjson"}
    anonymous = await required.post("/v1/ingest", content=body, headers=ndjson)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"]["code"] == "UNAUTHENTICATED"
    reader = await required.post(
        "/v1/ingest", content=body, headers=ndjson | bearer(keys["reader"][0])
    )
    assert reader.status_code == 403
    assert reader.json()["error"] == {
        "code": "FORBIDDEN",
        "message": "This needs the ingest role; the API key 'test reader key' has the reader role.",
    }
    ingest = await required.post(
        "/v1/ingest", content=body, headers=ndjson | bearer(keys["ingest"][0])
    )
    assert ingest.status_code == 200
    assert orjson.loads(ingest.content.splitlines()[0])["status"] == "CREATED"


# --- key scoping at ingest ----------------------------------------------------------------


async def _owner(db: Database, url: str) -> int | None:
    owner: int | None = await db.fetchval(
        "SELECT ingest_key_id FROM articles WHERE canonical_url = $1", url
    )
    return owner


async def test_an_ingest_key_writes_only_its_sources(
    write_db: Database, keys: dict[str, tuple[str, Principal]]
) -> None:
    _, partner = keys["ingest"]
    results = await ingest_batch(
        write_db,
        [
            article_input(url="https://a.example/mine", source={"domain": "a.example"}),
            article_input(url="https://news.a.example/sub", source=None),
            article_input(url="https://b.example/theirs", source=None),
            # Claiming its own domain for another site's URL does not work either.
            article_input(url="https://b.example/claimed", source={"domain": "a.example"}),
        ],
        writer=partner,
    )
    assert [r.status for r in results] == ["CREATED", "CREATED", "REJECTED", "REJECTED"]
    assert results[2].errors[0].code == "FORBIDDEN"
    assert results[2].errors[0].path == "articles[2].source.domain"
    assert "only articles of its sources (a.example); b.example is not one" in (
        results[2].errors[0].message
    )
    assert results[3].errors[0].path == "articles[3].url"
    assert await _owner(write_db, "https://a.example/mine") == partner.key_id


async def test_a_key_cannot_overwrite_another_keys_article_but_an_admin_can(
    write_db: Database, keys: dict[str, tuple[str, Principal]]
) -> None:
    _, first = keys["ingest"]
    _, second = keys["other"]
    _, admin = keys["admin"]
    item = partner_article(url="https://a.example/contested")
    [created] = await ingest_batch(write_db, [item], writer=first)
    assert created.status == "CREATED"
    [refused] = await ingest_batch(write_db, [dict(item, title="Hijacked")], writer=second)
    assert refused.status == "REJECTED"
    assert refused.errors[0].code == "FORBIDDEN"
    assert "last written with another API key" in refused.errors[0].message
    assert await _owner(write_db, "https://a.example/contested") == first.key_id
    [same] = await ingest_batch(write_db, [dict(item, title="Hijacked")], writer=first)
    assert same.status == "UPDATED"
    [by_admin] = await ingest_batch(write_db, [dict(item, title="Corrected")], writer=admin)
    assert by_admin.status == "UPDATED"
    assert await _owner(write_db, "https://a.example/contested") == admin.key_id
    # Now the admin's: the partner cannot change it back.
    [again] = await ingest_batch(write_db, [dict(item, title="Mine again")], writer=first)
    assert again.status == "REJECTED"


async def test_scoping_holds_over_graphql_too(
    required: httpx.AsyncClient, keys: dict[str, tuple[str, Principal]]
) -> None:
    items = [
        partner_article(url="https://a.example/gql"),
        partner_article(url="https://c.example/x"),
    ]
    response = await _post(required, INGEST, keys["ingest"][0], a=items)
    results = response.json()["data"]["ingestArticles"]
    assert [r["status"] for r in results] == ["CREATED", "REJECTED"]
    assert results[1]["errors"][0]["code"] == "FORBIDDEN"
    hijack = [dict(items[0], title="Changed by another partner")]
    refused = (await _post(required, INGEST, keys["other"][0], a=hijack)).json()
    assert refused["data"]["ingestArticles"][0]["errors"][0]["code"] == "FORBIDDEN"


# --- rate limits --------------------------------------------------------------------------


async def test_every_answer_carries_the_rate_limit_headers_and_the_cost(
    settings: Settings, db: Database
) -> None:
    public = with_settings(settings, auth="required", anonymous_reads=True)
    async with app_client(public, db) as client:
        response = await _post(client, READ)
        assert response.status_code == 200
        limit = int(response.headers["ratelimit-limit"])
        remaining = int(response.headers["ratelimit-remaining"])
        assert 0 < int(response.headers["ratelimit-reset"]) <= 60
        cost = response.json()["extensions"]["cost"]
        assert cost["requested"] >= 1
        assert cost == {
            "requested": cost["requested"],
            "remaining": remaining,
            "limit": limit,
            "resetSeconds": int(response.headers["ratelimit-reset"]),
        }
        rest = await client.get("/openapi.json")
        assert int(rest.headers["ratelimit-remaining"]) == remaining - 1  # REST costs 1


async def test_over_budget_is_429_with_retry_after(settings: Settings, write_db: Database) -> None:
    tight = with_settings(settings, auth="required", rate_limit_reader=10)
    token, _ = await make_key(write_db, settings, "reader")
    query = "{ articles(first: 5) { edges { node { title source { name } } } } }"  # cost 2
    async with app_client(tight, write_db) as http:
        statuses = [(await _post(http, query, token)).status_code for _ in range(5)]
        assert statuses == [200] * 5
        refused = await _post(http, query, token)
        assert refused.status_code == 429
        assert _code(refused) == "RATE_LIMITED"
        assert (
            "costs 2 points and 0 of 10 per minute are left"
            in (refused.json()["errors"][0]["message"])
        )
        assert 1 <= int(refused.headers["retry-after"]) <= 60
        assert refused.headers["ratelimit-remaining"] == "0"
        assert refused.json()["data"] is None


async def test_anonymous_callers_are_limited_per_client_address(
    settings: Settings, write_db: Database
) -> None:
    tight = with_settings(settings, rate_limit_anonymous=3, auth="required", anonymous_reads=True)
    async with app_client(tight, write_db) as http:
        assert [(await http.get("/openapi.json")).status_code for _ in range(3)] == [200] * 3
        refused = await http.get("/openapi.json")
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "RATE_LIMITED"
        assert "retry-after" in refused.headers
        # A key has a budget of its own.
        token, _ = await make_key(write_db, settings, "reader")
        assert (await http.get("/openapi.json", headers=bearer(token))).status_code == 200


async def test_a_budget_of_zero_means_unlimited(settings: Settings, write_db: Database) -> None:
    async with app_client(with_settings(settings, rate_limit_anonymous=0), write_db) as http:
        response = await _post(http, READ)
        assert response.status_code == 200
        assert "ratelimit-limit" not in response.headers
        assert response.json()["extensions"]["cost"]["limit"] is None


async def test_without_auth_callers_without_a_key_are_not_rate_limited(
    settings: Settings, db: Database
) -> None:
    local = with_settings(settings, auth="off", rate_limit_anonymous=1)
    async with app_client(local, db) as client:
        answers = [await _post(client, READ) for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert "ratelimit-limit" not in answers[-1].headers
