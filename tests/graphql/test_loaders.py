"""No N+1: the statements a request runs depend on the query's shape, never on page size."""

from __future__ import annotations

import dataclasses

import pytest

from service.config import Settings
from service.db.pool import Database, track_statements
from tests.conftest import GraphQLRunner


@pytest.fixture
def gql(settings: Settings, db: Database) -> GraphQLRunner:
    # Heavy on purpose (pages of 100 above nested lists), which the query cost and node
    # limits refuse by default (tests/graphql/test_limits.py): lifted here.
    lifted = dataclasses.replace(settings, max_query_cost=10**6, max_query_nodes=10**7)
    return GraphQLRunner(lifted, db)


# articles → source, entities → entity → coMentioned: one statement per level.
NESTED = """
query($first: Int!) {
  articles(first: $first) {
    edges { node {
      title
      source { name }
      entities { salience entity { name coMentioned(first: 5) { count } } }
    } }
  }
}"""

# Deeper: each level's loader may find every key already cached from an earlier level, which
# can only lower the count; it never grows with the page.
DEEP = """
query($first: Int!) {
  articles(first: $first) {
    edges { node {
      body
      source { name articles(first: 3) { edges { node { title } } } }
      entities { entity { aliases
        coMentioned(first: 5) { count entity { name } }
        articles(first: 3) { totalCount edges { node { title source { name } } } } } }
    } }
  }
}"""


async def _statements(gql: GraphQLRunner, query: str, first: int) -> tuple[int, int]:
    with track_statements() as log:
        data = await gql.data(query, first=first)
    return log.count, len(data["articles"]["edges"])


async def test_statement_count_does_not_grow_with_page_size(gql: GraphQLRunner) -> None:
    small, small_rows = await _statements(gql, NESTED, 5)
    large, large_rows = await _statements(gql, NESTED, 100)
    assert (small_rows, large_rows) == (5, 100)  # the demo data holds over 100 articles
    assert small == large == 5


async def test_deep_queries_stay_bounded_by_their_shape(gql: GraphQLRunner) -> None:
    small, _ = await _statements(gql, DEEP, 5)
    large, _ = await _statements(gql, DEEP, 100)
    assert large <= small <= 11


async def test_sibling_entity_pages_share_one_statement(gql: GraphQLRunner) -> None:
    query = """{ entities(first: 20) { edges { node { articles(first: 5) { edges { node { id } } } } } } }"""
    with track_statements(record=True) as log:
        await gql.data(query)
    assert log.count == 2
    assert "LATERAL" in log.statements[1]
