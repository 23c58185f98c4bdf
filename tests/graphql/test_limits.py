"""Query limits: every one refuses before any database work, naming the limit and its value."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import httpx
import pytest
import pytest_asyncio
from graphql import parse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, queries
from hypothesis_graphql import nodes as gql_nodes

from service.config import Settings
from service.db.pool import Database, track_statements
from service.graphql import build_schema, export_sdl
from service.graphql.limits import query_cost
from service.graphql.persisted import TrustedDocument, load_trusted_documents
from tests.access_support import with_settings
from tests.conftest import GraphQLRunner
from tests.support import app_client

HEAVY = """{ articles(first: 100) { edges { node {
  entities(first: 100) { entity { articles(first: 100) { edges { node { id } } } } }
} } } }"""


async def _refusal(gql: GraphQLRunner, query: str, **variables: Any) -> tuple[str, str]:
    with track_statements() as log:
        result = await gql(query, **variables)
    assert log.count == 0, "a refused query must not reach the database"
    assert result.errors is not None
    assert result.data is None
    error = result.errors[0]
    return str((error.extensions or {}).get("code")), error.message


def _cost(settings: Settings, query: str, **variables: Any) -> tuple[int, int]:
    schema = build_schema(settings)
    cost = query_cost(
        schema._schema,
        parse(query),
        None,
        variables,
        default_page_size=settings.default_page_size,
        max_page_size=settings.max_page_size,
    )
    assert cost is not None
    return cost.cost, cost.nodes


def test_cost_multiplies_page_sizes_down_the_tree(settings: Settings) -> None:
    # A root connection: 1 for the field, 1 for the list; 20 edges, nodes and sources.
    assert _cost(settings, "{ articles { edges { node { title source { name } } } } }") == (
        2,
        1 + 20 + 20 + 20,
    )
    # `first` from a variable; each article's entities list is a fetch of its own.
    query = (
        "query($n: Int) { articles(first: $n) { edges { node { entities { entity { id } } } } } }"
    )
    assert _cost(settings, query, n=10) == (2 + 10, 1 + 10 + 10 + 10 * 20 * 2)
    # A page size over the maximum counts as the maximum (the resolver refuses it anyway).
    assert _cost(settings, "{ sources(first: 500) { edges { cursor } } }")[1] == 1 + 100
    # Fragments count where they are spread.
    fragment = "{ ...F } fragment F on Query { entities(first: 3) { edges { node { name } } } }"
    assert _cost(settings, fragment) == (2, 1 + 3 + 3)


def test_mutations_cost_ten_plus_one_per_ten_items(settings: Settings) -> None:
    query = "mutation($a: [ArticleInput!]!) { ingestArticles(articles: $a) { status } }"
    cost, nodes = _cost(settings, query, a=[{}] * 95)
    assert cost == 1 + 1 + 10 + 10
    assert nodes == 95


TRUSTED = sorted(load_trusted_documents().values(), key=lambda d: d.name)


@pytest.mark.parametrize("document", TRUSTED, ids=[d.name for d in TRUSTED])
def test_the_trusted_operations_fit_the_default_limits(
    settings: Settings, document: TrustedDocument
) -> None:
    cost, nodes = _cost(settings, document.text)
    assert cost <= settings.max_query_cost
    assert nodes <= settings.max_query_nodes


async def test_too_many_nodes_is_refused_naming_the_limit(gql: GraphQLRunner) -> None:
    code, message = await _refusal(gql, HEAVY)
    assert code == "LIMIT_EXCEEDED"
    assert "may return up to 2,030,201 objects" in message
    assert "the limit is 50,000 (NEWSGRAPH_MAX_QUERY_NODES)" in message


async def test_too_costly_is_refused_naming_the_limit(settings: Settings, db: Database) -> None:
    gql = GraphQLRunner(with_settings(settings, max_query_cost=5), db)
    query = "{ articles(first: 10) { edges { node { entities { salience } } } } }"
    code, message = await _refusal(gql, query)
    assert code == "LIMIT_EXCEEDED"
    assert "costs 12 points; the limit is 5 per request (NEWSGRAPH_MAX_QUERY_COST)" in message


async def test_queries_within_the_limits_run_and_report_their_cost(gql: GraphQLRunner) -> None:
    result = await gql("{ articles(first: 3) { edges { node { title } } } }")
    assert result.errors is None
    assert result.extensions == {
        "cost": {"requested": 2, "remaining": None, "limit": None, "resetSeconds": None}
    }


async def test_too_many_aliases_is_refused_counting_through_fragments(
    gql: GraphQLRunner,
) -> None:
    fields = " ".join(f"a{i}: __typename" for i in range(20))
    query = f"{{ ...F ...G }} fragment F on Query {{ {fields} }} fragment G on Query {{ {fields} }}"
    code, message = await _refusal(gql, query)
    assert code == "LIMIT_EXCEEDED"
    assert message == "The document uses 40 aliases; the limit is 30 (NEWSGRAPH_MAX_QUERY_ALIASES)."
    assert (
        await gql("{ " + " ".join(f"a{i}: __typename" for i in range(30)) + " }")
    ).errors is None


async def test_too_many_tokens_is_refused(gql: GraphQLRunner) -> None:
    query = "{ " + " ".join("__typename" for _ in range(2001)) + " }"
    code, message = await _refusal(gql, query)
    assert code == "LIMIT_EXCEEDED"
    assert "more than 2000 tokens; the limit is 2000 (NEWSGRAPH_MAX_QUERY_TOKENS)" in message


async def test_too_deep_is_refused(gql: GraphQLRunner) -> None:
    nested = '{ entity(slug: "x") { articles(first: 1) { edges { node { source { articles(first: 1) { edges { node { entities { entity { articles(first: 1) { edges { node { id } } } } } } } } } } } } } }'
    code, message = await _refusal(gql, nested)
    assert code == "LIMIT_EXCEEDED"
    assert "is 14 levels deep; the maximum depth is 12 (NEWSGRAPH_MAX_QUERY_DEPTH)" in message


async def test_fragments_spread_twice_at_every_level_are_refused_at_once(
    gql: GraphQLRunner,
) -> None:
    # 2^40 paths through 40 fragments: walking each path again (as strawberry's depth and
    # alias limiters do) would never finish; each fragment is measured once here.
    fragments = [f"fragment F{i} on Query {{ ...F{i + 1} ...F{i + 1} }}" for i in range(40)]
    fragments.append("fragment F40 on Query { sources(first: 1) { edges { cursor } } }")
    started = time.monotonic()
    code, message = await _refusal(gql, "{ ...F0 } " + " ".join(fragments))
    assert time.monotonic() - started < 1
    assert code == "LIMIT_EXCEEDED"
    assert "NEWSGRAPH_MAX_QUERY_NODES" in message


async def test_introspection_is_off_in_production(settings: Settings, db: Database) -> None:
    production = GraphQLRunner(with_settings(settings, env="production"), db)
    code, message = await _refusal(production, "{ __schema { types { name } } }")
    assert code == "GRAPHQL_VALIDATION_FAILED"
    assert "introspection has been disabled" in message
    assert (await production("{ __typename }")).errors is None
    development = GraphQLRunner(settings, db)
    assert (await development("{ __schema { types { name } } }")).errors is None


async def test_batches_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json=[{"query": "{ __typename }"}, {"query": "{ __typename }"}]
    )
    assert response.status_code == 400


# --- property: random queries never make a 500 ---------------------------------------------

SDL = export_sdl()
SCALARS = {
    "DateTime": st.datetimes(timezones=st.just(UTC)).map(lambda d: gql_nodes.String(d.isoformat()))
}
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def roomy(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The app with limits wide enough that generated queries mostly execute."""
    wide = with_settings(
        settings, max_query_cost=10**9, max_query_nodes=10**12, rate_limit_anonymous=0
    )
    async with app_client(wide, db) as http:
        yield http


async def _no_server_error(http: httpx.AsyncClient, query: str) -> None:
    response = await http.post("/graphql", json={"query": query})
    assert response.status_code < 500, (query, response.text)
    body = response.json()
    codes = {(e.get("extensions") or {}).get("code") for e in body.get("errors") or ()}
    assert "INTERNAL_SERVER_ERROR" not in codes, (query, body)


@PROPERTY
@given(query=queries(SDL, custom_scalars=SCALARS))
async def test_random_valid_queries_never_fail_with_a_500(
    roomy: httpx.AsyncClient, query: str
) -> None:
    await _no_server_error(roomy, query)


@PROPERTY
@given(query=queries(SDL, custom_scalars=SCALARS, mode=Mode.NEGATIVE))
async def test_random_invalid_queries_never_fail_with_a_500(
    roomy: httpx.AsyncClient, query: str
) -> None:
    await _no_server_error(roomy, query)


def test_a_full_ingest_call_fits_the_default_limits(settings: Settings) -> None:
    # 1,000 articles with their results selected: results load in batches, so the cost does
    # not grow with the number of items, and the nodes stay under the ceiling.
    document = (
        "mutation($a: [ArticleInput!]!) { ingestArticles(articles: $a) "
        "{ index status errors { path code message } article { id title source { name } } } }"
    )
    articles = [{"url": f"https://limits.example/{i}", "title": "t"} for i in range(1000)]
    cost, nodes = _cost(settings, document, a=articles)
    assert cost <= settings.max_query_cost
    assert nodes <= settings.max_query_nodes
