"""No N+1: the statements a request runs depend on the query's shape, never on page size."""

from __future__ import annotations

from service.db.pool import track_statements
from tests.conftest import GraphQLRunner

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
