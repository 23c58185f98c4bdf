from __future__ import annotations

from typing import Any

import pytest
from graphql import parse

from tests.conftest import GraphQLRunner


async def _error(gql: GraphQLRunner, query: str, **variables: Any) -> dict[str, Any]:
    result = await gql(query, **variables)
    assert result.errors, "expected an error"
    error = result.errors[0]
    return {"message": error.message, "code": (error.extensions or {}).get("code")}


@pytest.mark.parametrize(
    ("query", "code", "fragment"),
    [
        ("{ article { id } }", "BAD_INPUT", "exactly one of `id`, `url`"),
        ('{ article(id: "x", url: "https://a.example/") { id } }', "BAD_INPUT", "exactly one"),
        ('{ article(id: "not-an-id") { id } }', "BAD_INPUT", "not a valid Newsgraph id"),
        ('{ article(id: "RW50aXR5OjE") { id } }', "BAD_INPUT", "id of a Entity, not of a Article"),
        ('{ article(url: "javascript:alert(1)") { id } }', "BAD_INPUT", "http(s) URL"),
        ("{ articles(first: 101) { edges { cursor } } }", "LIMIT_EXCEEDED", "at most 100, got 101"),
        ("{ articles(first: 0) { edges { cursor } } }", "BAD_INPUT", "at least 1"),
        ("{ entities(first: 1000) { edges { cursor } } }", "LIMIT_EXCEEDED", "at most 100"),
        (
            '{ articles(after: "garbage") { edges { cursor } } }',
            "BAD_CURSOR",
            "not a cursor issued",
        ),
        ("{ articles(orderBy: RELEVANCE) { edges { cursor } } }", "BAD_INPUT", "needs a `search`"),
        (
            '{ articles(filter: {sources: ["QXJ0aWNsZTox"]}) { edges { cursor } } }',
            "BAD_INPUT",
            "not of a Source",
        ),
        (
            '{ articles(filter: {publishedAfter: "2024-01-01T00:00:00"}) { edges { cursor } } }',
            "BAD_INPUT",
            "time-zone offset",
        ),
        (
            '{ articles(filter: {publishedAfter: "soon"}) { edges { cursor } } }',
            "GRAPHQL_VALIDATION_FAILED",
            "DateTime",
        ),
        ("{ articles { edges { cursor } ", "GRAPHQL_PARSE_FAILED", "Syntax Error"),
        ("{ articles { nope } }", "GRAPHQL_VALIDATION_FAILED", "Cannot query field 'nope'"),
    ],
)
async def test_client_mistakes_get_a_stable_code_and_a_useful_message(
    gql: GraphQLRunner, query: str, code: str, fragment: str
) -> None:
    error = await _error(gql, query)
    assert error["code"] == code
    assert fragment in error["message"]


async def test_a_cursor_from_another_order_is_refused(gql: GraphQLRunner) -> None:
    data = await gql.data("{ articles(first: 1) { pageInfo { endCursor } } }")
    cursor = data["articles"]["pageInfo"]["endCursor"]
    error = await _error(
        gql,
        "query($c: String) { articles(orderBy: OLDEST, after: $c) { edges { cursor } } }",
        c=cursor,
    )
    assert error["code"] == "BAD_CURSOR"
    assert "another order" in error["message"]


async def test_oversized_inputs_are_limits(gql: GraphQLRunner) -> None:
    error = await _error(
        gql, "query($s: String) { articles(search: $s) { edges { cursor } } }", s="x" * 501
    )
    assert error["code"] == "LIMIT_EXCEEDED"
    many = [f"id{i}" for i in range(101)]
    error = await _error(
        gql, "query($e: [ID!]) { articles(filter: {entities: $e}) { edges { cursor } } }", e=many
    )
    assert error["code"] == "LIMIT_EXCEEDED"


async def test_too_deep_queries_are_refused_before_running(gql: GraphQLRunner) -> None:
    nested = "entity { coMentioned { " * 8 + "count" + " } }" * 8
    query = f"{{ articles(first: 1) {{ edges {{ node {{ entities {{ {nested} }} }} }} }} }}"
    error = await _error(gql, query)
    assert error["code"] == "LIMIT_EXCEEDED"
    assert "depth" in error["message"]


async def test_unexpected_errors_are_masked_with_the_request_id(
    gql: GraphQLRunner, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from service.db import entities

    async def broken(*args: object, **kwargs: object) -> object:
        raise RuntimeError("secret internals: password=hunter2")

    monkeypatch.setattr(entities, "list_entities", broken)
    error = await _error(gql, "{ entities { edges { cursor } } }")
    assert error["code"] == "INTERNAL_SERVER_ERROR"
    assert "hunter2" not in error["message"]
    assert "request id" in error["message"]
    assert "hunter2" in caplog.text  # the operator still sees it, in the log


async def test_nul_characters_in_text_arguments_are_bad_input(gql: GraphQLRunner) -> None:
    # Found by the property test: PostgreSQL text cannot hold NUL, which used to be a 500.
    for query in (
        "query($s: String) { entities(search: $s) { edges { cursor } } }",
        "query($s: String) { entity(slug: $s) { id } }",
    ):
        error = await _error(gql, query, s="ab\x00cd")
        assert error["code"] == "BAD_INPUT"
        assert "NUL" in error["message"]


async def test_a_document_seen_before_is_parsed_once_and_a_bad_one_fails_every_time(
    gql: GraphQLRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    parsed: list[str] = []

    def counting(source: str, **options: Any) -> Any:
        parsed.append(source)
        return parse(source, **options)

    monkeypatch.setattr("service.graphql.schema.parse", counting)
    query = "{ articles(first: 1) { edges { cursor } } parsedOnce: __typename }"
    for _ in range(3):
        data = await gql.data(query)
        assert data["parsedOnce"] == "Query"
    assert parsed == [query]
    bad = "{ articles(first: 1) { edges { cursor } } parsedOnce"
    for _ in range(2):
        error = await _error(gql, bad)
        assert error["code"] == "GRAPHQL_PARSE_FAILED"
        assert "Syntax Error" in error["message"]
