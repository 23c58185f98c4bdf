"""No N+1: the statements a request runs depend on the query's shape, never on page size."""

from __future__ import annotations

from service.db.pool import track_statements
from tests.conftest import GraphQLRunner

NESTED = """
query($first: Int!) {
  articles(first: $first) {
    edges { node {
      title body
      source { name articles(first: 3) { edges { node { title } } } }
      entities { salience entity { name aliases
        coMentioned(first: 5) { count entity { name } }
        articles(first: 3) { totalCount edges { node { title source { name } } } } } }
    } }
  }
}"""


async def _statements(gql: GraphQLRunner, first: int) -> tuple[int, int]:
    with track_statements() as log:
        data = await gql.data(NESTED, first=first)
    return log.count, len(data["articles"]["edges"])


async def test_statement_count_does_not_grow_with_page_size(gql: GraphQLRunner) -> None:
    small, small_rows = await _statements(gql, 5)
    large, large_rows = await _statements(gql, 100)
    assert (small_rows, large_rows) == (5, 100)  # the demo data holds over 100 articles
    assert small == large
    assert small <= 10


async def test_sibling_entity_pages_share_one_statement(gql: GraphQLRunner) -> None:
    query = """{ entities(first: 20) { edges { node { articles(first: 5) { edges { node { id } } } } } } }"""
    with track_statements(record=True) as log:
        await gql.data(query)
    assert log.count == 2
    assert "LATERAL" in log.statements[1]
