"""Request ids, the JSON access log and /metrics (service/observability.py, service/metrics.py)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.config import Settings
from service.db.pool import Database
from service.metrics import Metrics, operation_names
from service.observability import JsonFormatter, tracing_enabled
from service.resources import operations_dir
from tests.factories import article_input
from tests.support import app_client

FEED = "query Feed { articles(first: 2) { edges { node { title source { name } } } } }"


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of an exposition, by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


def access_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    formatter = JsonFormatter()
    return [json.loads(formatter.format(r)) for r in caplog.records if r.name == "newsgraph.access"]


async def test_a_valid_request_id_is_echoed(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "abc-123.X_y"})
    assert response.headers["x-request-id"] == "abc-123.X_y"


@pytest.mark.parametrize("given", [None, "", "x" * 129, "has space", "tab\tbed", "ünïcode", "a;b"])
async def test_a_missing_or_invalid_request_id_is_replaced(
    client: httpx.AsyncClient, given: str | None
) -> None:
    # Header values are bytes: non-ASCII ones arrive as their UTF-8 bytes.
    headers = [] if given is None else [(b"x-request-id", given.encode())]
    response = await client.get("/healthz", headers=headers)
    generated = response.headers["x-request-id"]
    assert generated != given
    assert len(generated) == 32
    int(generated, 16)


async def test_one_json_access_line_per_request(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="newsgraph.access")
    response = await client.post(
        "/graphql", json={"query": FEED, "operationName": "Feed"}, headers={"x-request-id": "r-1"}
    )
    assert response.status_code == 200
    generated = (await client.get("/healthz")).headers["x-request-id"]
    first, second = access_lines(caplog)
    assert first["method"] == "POST"
    assert first["path"] == "/graphql"
    assert first["status"] == 200
    assert first["operation"] == "Feed"
    assert first["request_id"] == "r-1"
    assert first["key_id"] is None
    assert isinstance(first["duration_ms"], float)
    assert first["duration_ms"] > 0
    assert isinstance(first["sql_statements"], int)
    assert first["sql_statements"] >= 2  # the articles and their sources
    assert first["logger"] == "newsgraph.access"
    assert first["level"] == "INFO"
    assert second["path"] == "/healthz"
    assert second["operation"] is None
    assert second["sql_statements"] == 0
    assert second["request_id"] == generated


def test_the_json_formatter_writes_one_line_with_extras_and_the_stack() -> None:
    try:
        raise ValueError("bad\nthing")
    except ValueError:
        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed %s", ("here",), None)
        record.exc_info = sys.exc_info()
    record.batch = 3
    text = JsonFormatter().format(record)
    assert "\n" not in text
    entry = json.loads(text)
    assert entry["message"] == "failed here"
    assert entry["level"] == "ERROR"
    assert entry["batch"] == 3
    assert "ValueError: bad" in entry["stack"]
    assert entry["time"].endswith("+00:00")


async def test_metrics_count_requests_operations_errors_and_statements(
    client: httpx.AsyncClient,
) -> None:
    await client.post("/graphql", json={"query": FEED})
    await client.post("/graphql", json={"query": FEED.replace("Feed", "MyOwnName")})
    await client.post("/graphql", json={"query": FEED.replace("query Feed ", "")})
    await client.post("/graphql", json={"query": "{ articles(first: 1000) { edges { cursor } } }"})
    await client.post("/graphql", json={"query": "{ nope"})
    await client.get("/v1/not-a-route-we-have")
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    ops = "newsgraph_graphql_operations_total"
    assert value(text, ops, operation="Feed", type="query", outcome="ok") == 1
    assert value(text, ops, operation="other", type="query", outcome="ok") == 1
    assert value(text, ops, operation="anonymous", type="query", outcome="ok") == 1
    assert value(text, ops, operation="anonymous", type="query", outcome="client_error") == 1
    assert value(text, ops, operation="anonymous", type="unknown", outcome="client_error") == 1
    assert value(text, "newsgraph_graphql_errors_total", code="LIMIT_EXCEEDED") == 1
    assert value(text, "newsgraph_graphql_errors_total", code="GRAPHQL_PARSE_FAILED") == 1
    assert "MyOwnName" not in text
    assert (
        value(text, "newsgraph_http_requests_total", route="/graphql", method="POST", status="200")
        >= 3
    )
    assert (
        value(text, "newsgraph_http_requests_total", route="unmatched", method="GET", status="404")
        == 1
    )
    assert "not-a-route" not in text
    assert value(text, "newsgraph_sql_statements_per_request_count", route="/graphql") == 5
    assert value(text, "newsgraph_sql_statements_per_request_sum", route="/graphql") >= 6
    assert value(text, "newsgraph_graphql_operation_duration_seconds_count", operation="Feed") == 1
    assert value(text, "newsgraph_db_pool_max_size", pool="primary") == 10
    assert value(text, "newsgraph_db_pool_size", pool="primary") >= 1
    assert value(text, "newsgraph_db_pool_waiting", pool="primary") == 0
    assert value(text, "newsgraph_rate_limited_total") == 0
    assert value(text, "process_resident_memory_bytes") > 0


async def test_metrics_count_ingested_items_by_status(
    settings: Settings, write_db: Database
) -> None:
    good = article_input()
    body = orjson.dumps(good) + b"\n" + b"not json\n" + orjson.dumps(good) + b"\n"
    async with app_client(settings, write_db) as http:
        response = await http.post(
            "/v1/ingest", content=body, headers={"content-type": "application/x-ndjson"}
        )
        assert [orjson.loads(line)["status"] for line in response.content.splitlines()] == [
            "CREATED", "REJECTED", "UNCHANGED",
        ]  # fmt: skip
        mutation = "mutation($a: [ArticleInput!]!) { ingestArticles(articles: $a) { status } }"
        await http.post("/graphql", json={"query": mutation, "variables": {"a": [{}]}})
        text = (await http.get("/metrics")).text
    total = "newsgraph_ingest_items_total"
    assert value(text, total, status="CREATED") == 1
    assert value(text, total, status="UNCHANGED") == 1
    assert value(text, total, status="REJECTED") == 2


async def test_answers_refused_by_the_rate_limiter_are_counted(
    settings: Settings, db: Database
) -> None:
    limited = dataclasses.replace(
        settings, rate_limit_anonymous=1, auth="required", anonymous_reads=True
    )
    async with app_client(limited, db) as http:
        statuses = [(await http.post("/graphql", json={"query": FEED})).status_code for _ in "ab"]
        text = (await http.get("/metrics")).text
    assert statuses[-1] == 429
    assert value(text, "newsgraph_rate_limited_total") == statuses.count(429)


def test_only_persisted_operation_names_are_label_values() -> None:
    names = operation_names(operations_dir())
    assert {"Feed", "ArticlePage", "EntityPage", "Search", "SourcePage", "Autocomplete"} <= names
    metrics = Metrics(known_operations=names)
    assert metrics.operation_label("EntityPage") == "EntityPage"
    assert metrics.operation_label("entitypage") == "other"
    assert metrics.operation_label("x" * 1000) == "other"
    assert metrics.operation_label(None) == "anonymous"
    assert metrics.operation_label("") == "anonymous"


def test_tracing_is_on_only_when_an_exporter_is_configured() -> None:
    def enabled(env: dict[str, str]) -> bool:
        return tracing_enabled(Settings.from_environ(env))

    assert not enabled({})
    assert enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"})
    assert enabled({"OTEL_TRACES_EXPORTER": "console"})
    assert not enabled({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c"})


def _run(code: str, env: dict[str, str]) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_tracing_off_imports_nothing_of_opentelemetry() -> None:
    out = _run(
        """
        import sys
        from service.app import create_app
        from service.config import Settings
        create_app(Settings.from_environ({"DATABASE_URL": "postgresql://u@h/d"}))
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry")))
        """,
        {},
    )
    assert out.strip() == "[]"


def test_multiprocess_mode_sums_the_files_of_every_process(tmp_path: Path) -> None:
    # prometheus_client picks its value storage when imported: only a fresh process can show it.
    code = f"""
        from pathlib import Path
        from service.metrics import Metrics
        metrics = Metrics(multiproc_dir=Path({str(tmp_path)!r}))
        metrics.observe_request("/graphql", "POST", 200, 0.01, 3)
        print(metrics.exposition().decode())
        """
    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    _run(code, env)
    text = _run(code, env)  # a second "worker": its count adds to the first's
    assert (
        value(text, "newsgraph_http_requests_total", route="/graphql", method="POST", status="200")
        == 2
    )
