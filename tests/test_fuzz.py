"""Schemathesis against `/openapi.json` and `/graphql`: whatever a client sends, never a 5xx.

Generated requests go to the app in process (schemathesis's ASGI client, with the app's own
lifespan and pools) over a scratch database holding the demo news, so generated mutations
cannot disturb the other tests. The run is bounded (`EXAMPLES` per face, derandomised so CI
sees the same requests each time); `bench/fuzz.py` runs longer, random campaigns.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from service.app import create_app
from service.config import Settings
from service.db.migrate import upgrade
from service.db.pool import open_database
from service.demo import load_demo
from tests.support import create_database, drop_database

schemathesis = pytest.importorskip("schemathesis")

from hypothesis import HealthCheck, given  # noqa: E402
from hypothesis import settings as hypothesis_settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from schemathesis.generation import GenerationMode  # noqa: E402
from schemathesis.python.asgi import shutdown_lifespans  # noqa: E402

EXAMPLES = 150


def _ndjson(context: Any, value: Any) -> bytes:
    # The schema describes one line; a generated list becomes several.
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


schemathesis.serializer("application/x-ndjson", "application/jsonl")(_ndjson)


@pytest.fixture(scope="module")
def fuzz_app(server_url: str) -> Iterator[Any]:
    name = f"newsgraph_fuzz_{os.getpid()}"

    async def prepare() -> str:
        url = await create_database(server_url, name)
        await asyncio.to_thread(upgrade, url)
        settings = Settings.from_environ({"DATABASE_URL": url})
        async with open_database(settings) as db:
            await load_demo(db)
        return url

    url = asyncio.run(prepare())
    try:
        yield create_app(
            Settings.from_environ({"DATABASE_URL": url, "NEWSGRAPH_RATE_LIMIT_ANONYMOUS": "0"})
        )
    finally:
        shutdown_lifespans()
        asyncio.run(drop_database(server_url, name))


def _fuzz(strategy: st.SearchStrategy[Any], check: Any) -> int:
    sent = 0

    @hypothesis_settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        check(case, case.call())

    run()
    return sent


def _describe(case: Any, response: Any) -> str:
    return f"{case.method} {case.formatted_path} {case.body!r:.500} -> {response.status_code}"


def test_rest_answers_no_generated_request_with_a_5xx(fuzz_app: Any) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)
    failures: list[str] = []

    def check(case: Any, response: Any) -> None:
        if response.status_code >= 500:
            failures.append(_describe(case, response) + f" {response.text[:300]}")

    strategy = schema.as_strategy() | schema.as_strategy(GenerationMode.NEGATIVE)
    sent = _fuzz(strategy, check)
    print(f"\nREST fuzz: {sent} generated requests, {len(failures)} answered 5xx")
    assert not failures, "\n".join(failures[:10])


def test_graphql_answers_no_generated_operation_with_a_server_error(fuzz_app: Any) -> None:
    schema = schemathesis.graphql.from_asgi("/graphql", fuzz_app)
    failures: list[str] = []

    def check(case: Any, response: Any) -> None:
        try:
            body = response.json()
        except ValueError:
            body = {}
        codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or []}
        if response.status_code >= 500 or "INTERNAL_SERVER_ERROR" in codes:
            failures.append(_describe(case, response) + f" {response.text[:300]}")

    sent = _fuzz(schema.as_strategy(), check)
    print(f"\nGraphQL fuzz: {sent} generated operations, {len(failures)} server errors")
    assert not failures, "\n".join(failures[:10])


def test_upsert_entities_refuses_a_malformed_wikidata_id_as_bad_input(fuzz_app: Any) -> None:
    from schemathesis.python.asgi import get_client

    mutation = 'mutation { upsertEntities(entities: [{name: "X", kind: PERSON, wikidataId: "x;"}]) { id } }'
    with get_client(fuzz_app) as http:
        body = http.post("/graphql", json={"query": mutation}).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT", body


def test_upsert_entities_refuses_a_name_empty_as_plain_text(fuzz_app: Any) -> None:
    from schemathesis.python.asgi import get_client

    mutation = 'mutation { upsertEntities(entities: [{name: "\\u00ad", kind: EVENT}]) { id } }'
    with get_client(fuzz_app) as http:
        body = http.post("/graphql", json={"query": mutation}).json()
    assert body["errors"][0]["extensions"]["code"] == "BAD_INPUT", body


def test_an_article_whose_title_is_empty_as_plain_text_is_rejected_with_a_reason(
    fuzz_app: Any,
) -> None:
    from schemathesis.python.asgi import get_client

    line = json.dumps({"url": "https://fuzz.example/empty-title", "title": "<b>\u00ad</b>"})
    with get_client(fuzz_app) as http:
        response = http.post(
            "/v1/ingest", data=line + "\n", headers={"content-type": "application/x-ndjson"}
        )
    (result,) = [json.loads(text) for text in response.text.splitlines()]
    assert result["status"] == "REJECTED"
    assert result["errors"], result
