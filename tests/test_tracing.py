"""OpenTelemetry tracing (the `otel` extra): one trace per request, down to the SQL statements."""

from __future__ import annotations

import dataclasses

import pytest

from service.config import Settings
from service.db.pool import Database
from service.observability import start_tracing
from tests.support import app_client

pytest.importorskip("opentelemetry.sdk.trace", reason="the otel extra is not installed")
pytest.importorskip("opentelemetry.instrumentation.asyncpg", reason="the otel extra is missing")

from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)

FEED = """query Feed($first: Int) {
  articles(first: $first, search: "ceasefire") { edges { node { title source { name } } } }
}"""


def _ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_query_is_one_trace_from_the_request_down_to_the_sql(
    settings: Settings, db: Database
) -> None:
    # "console" switches tracing on in the app (its spans go to the captured stdout); the
    # test's own in-memory exporter sees the same spans.
    traced = dataclasses.replace(settings, otel_traces_exporter="console")
    exporter = InMemorySpanExporter()
    tracing = start_tracing(traced, exporter=exporter)
    try:
        async with app_client(traced, db) as http:
            response = await http.post("/graphql", json={"query": FEED, "variables": {"first": 2}})
            assert response.status_code == 200
            assert not response.json().get("errors")
    finally:
        tracing.shutdown()
    spans = exporter.get_finished_spans()
    by_id = {s.context.span_id: s for s in spans}
    (request,) = [s for s in spans if s.name == "POST /graphql"]
    assert {s.context.trace_id for s in spans} == {request.context.trace_id}
    sql = [s for s in spans if (s.attributes or {}).get("db.system") == "postgresql"]
    assert sql, [s.name for s in spans]
    for span in sql:
        chain = _ancestors(span, by_id)
        assert chain[-1] == "POST /graphql", chain
        assert "GraphQL Query: Feed" in chain, chain
    resolver = next(s for s in spans if s.name == "GraphQL Resolving: articles")
    attributes = dict(resolver.attributes or {})
    assert attributes.get("graphql.param.first") == 2
    assert "graphql.param.search" not in attributes  # texts may be personal: left out


async def test_tracing_stops_with_its_shutdown(settings: Settings, db: Database) -> None:
    exporter = InMemorySpanExporter()
    start_tracing(settings, exporter=exporter).shutdown()
    await db.fetchval("SELECT 1")
    assert exporter.get_finished_spans() == ()
