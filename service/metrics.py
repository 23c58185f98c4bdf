"""Prometheus metrics of one process: what `/metrics` shows.

`Metrics` holds the counters and histograms (names below) in a registry of its own, so each
app, and each test, counts separately. The app makes the one for the current request
reachable through a contextvar (`use_metrics`), which is how code far from the app, like the
ingest pipeline, counts without being handed it: `count_ingest(statuses)`.

Label values are bounded: routes are path templates, GraphQL operation names are the ones in
`schema/operations/` (others are "other", unnamed ones "anonymous"), error codes are ours.

With `PROMETHEUS_MULTIPROC_DIR` set (`settings.metrics_multiproc_dir`), prometheus_client
writes every value to files in that directory and `/metrics` sums the files of all worker
processes; the directory must be empty when the server starts.
"""

from __future__ import annotations

import contextlib
import os
import re
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Final, Protocol

import graphql
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = [
    "CONTENT_TYPE",
    "Metrics",
    "PoolFigures",
    "PoolStatsSource",
    "count_ingest",
    "current_metrics",
    "operation_names",
    "use_metrics",
]

CONTENT_TYPE: Final = CONTENT_TYPE_LATEST
METHODS: Final = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
INGEST_STATUSES: Final = frozenset({"CREATED", "UPDATED", "UNCHANGED", "REJECTED"})
OPERATION_TYPES: Final = frozenset({"query", "mutation", "subscription"})
_CODE: Final = re.compile(r"[A-Z][A-Z_]{0,39}")
LATENCY_BUCKETS: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
STATEMENT_BUCKETS: Final = (0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144)


class PoolFigures(Protocol):
    """One pool's figures (service.db.pool.PoolStats)."""

    @property
    def pool(self) -> str: ...
    @property
    def size(self) -> int: ...
    @property
    def idle(self) -> int: ...
    @property
    def max_size(self) -> int: ...
    @property
    def waiting(self) -> int: ...


class PoolStatsSource(Protocol):
    """What the pool gauges read (service.db.pool.Database)."""

    def pool_stats(self) -> Iterable[PoolFigures]: ...


def operation_names(operations_dir: Path) -> frozenset[str]:
    """The names of the persisted operations: the only names used as label values."""
    names: set[str] = set()
    for path in sorted(operations_dir.glob("*.graphql")):
        for definition in graphql.parse(path.read_text(encoding="utf-8")).definitions:
            if isinstance(definition, graphql.OperationDefinitionNode) and definition.name:
                names.add(definition.name.value)
    return frozenset(names)


class Metrics:
    """The metrics of one app; `exposition()` renders them for `/metrics`."""

    def __init__(
        self, *, known_operations: Iterable[str] = (), multiproc_dir: Path | None = None
    ) -> None:
        self.known_operations = frozenset(known_operations)
        self.multiproc_dir = multiproc_dir
        # In multiprocess mode values live in files; `exposition` reads them all instead.
        registry = None if multiproc_dir else CollectorRegistry()
        self.registry = registry
        if registry is not None:
            ProcessCollector(registry=registry)
            PlatformCollector(registry=registry)
            GCCollector(registry=registry)
        self._pools: list[PoolStatsSource] = []

        self.http_requests = Counter(
            "newsgraph_http_requests_total",
            "HTTP requests by route template, method and status.",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_duration = Histogram(
            "newsgraph_http_request_duration_seconds",
            "HTTP request duration, to the last byte.",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.operations = Counter(
            "newsgraph_graphql_operations_total",
            "GraphQL operations by name (persisted names, else other/anonymous), type, outcome.",
            ["operation", "type", "outcome"],
            registry=registry,
        )
        self.operation_duration = Histogram(
            "newsgraph_graphql_operation_duration_seconds",
            "GraphQL operation duration.",
            ["operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.graphql_errors = Counter(
            "newsgraph_graphql_errors_total",
            "GraphQL errors by extensions.code.",
            ["code"],
            registry=registry,
        )
        self.statements = Histogram(
            "newsgraph_sql_statements_per_request",
            "SQL statements one HTTP request ran.",
            ["route"],
            buckets=STATEMENT_BUCKETS,
            registry=registry,
        )
        self.ingest_items = Counter(
            "newsgraph_ingest_items_total",
            "Ingested articles by result status.",
            ["status"],
            registry=registry,
        )
        self.rate_limited = Counter(
            "newsgraph_rate_limited_total",
            "Requests refused with 429 (a rate limit spent).",
            registry=registry,
        )
        pool_gauges = {
            "size": "Open connections.",
            "in_use": "Connections lent to a request.",
            "idle": "Open connections not in use.",
            "max_size": "The pool's connection limit.",
            "waiting": "Requests waiting for a connection.",
        }
        # livesum: with several workers, the sum over the live processes.
        self.pool = {
            name: Gauge(
                f"newsgraph_db_pool_{name}",
                text,
                ["pool"],
                registry=registry,
                multiprocess_mode="livesum",
            )
            for name, text in pool_gauges.items()
        }

        # The same figure in every worker (the table is shared): the highest live one.
        self.related_queue = Gauge(
            "newsgraph_related_queue_depth",
            "Articles queued for related-stories indexing (indexed within seconds of ingest).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.related_refresh = Gauge(
            "newsgraph_related_refresh_depth",
            "Rows in the related-lists refresh log (stored lists waiting to be re-ranked).",
            registry=registry,
            multiprocess_mode="livemax",
        )
        self.related_refreshed = Counter(
            "newsgraph_related_refreshed_total",
            "Refresh-log rows this process's related-lists refresher worked.",
            registry=registry,
        )
        self.related_indexed = Counter(
            "newsgraph_related_indexed_total",
            "Queued articles this process's related-stories indexer claimed and indexed.",
            registry=registry,
        )

    def observe_related_refresh(self, depth: int, refreshed: int = 0) -> None:
        """The related-lists refresher's latest log-depth reading and the log rows it worked
        since the last one."""
        self.related_refresh.set(depth)
        if refreshed:
            self.related_refreshed.inc(refreshed)

    def observe_related_queue(self, depth: int, indexed: int = 0) -> None:
        """The indexer's latest queue-depth reading and the articles it indexed since the last
        one (called from the indexer's thread; prometheus_client is thread-safe)."""
        self.related_queue.set(depth)
        if indexed:
            self.related_indexed.inc(indexed)

    def operation_label(self, name: str | None) -> str:
        if not name:
            return "anonymous"
        return name if name in self.known_operations else "other"

    def observe_request(
        self, route: str, method: str, status: int, seconds: float, statements: int
    ) -> None:
        method = method if method in METHODS else "OTHER"
        self.http_requests.labels(route, method, str(status)).inc()
        self.http_duration.labels(route, method).observe(seconds)
        self.statements.labels(route).observe(statements)

    def observe_operation(
        self, name: str | None, kind: str, outcome: str, seconds: float, codes: Iterable[str]
    ) -> None:
        label = self.operation_label(name)
        self.operations.labels(label, kind if kind in OPERATION_TYPES else "unknown", outcome).inc()
        self.operation_duration.labels(label).observe(seconds)
        for code in codes:
            self.graphql_errors.labels(code if _CODE.fullmatch(code) else "OTHER").inc()

    def count_ingest(self, statuses: Iterable[str]) -> None:
        counts: dict[str, int] = {}
        for status in statuses:
            key = status if status in INGEST_STATUSES else "OTHER"
            counts[key] = counts.get(key, 0) + 1
        for status, n in counts.items():
            self.ingest_items.labels(status).inc(n)

    def watch_pools(self, source: PoolStatsSource) -> None:
        """Report `source`'s pools in the pool gauges (until `unwatch_pools`)."""
        self._pools.append(source)
        self.refresh_pools()

    def unwatch_pools(self, source: PoolStatsSource) -> None:
        with contextlib.suppress(ValueError):
            self._pools.remove(source)

    def refresh_pools(self) -> None:
        """Copy the pools' current figures into the gauges (each scrape, each request)."""
        for source in self._pools:
            for stats in source.pool_stats():
                self.pool["size"].labels(stats.pool).set(stats.size)
                self.pool["in_use"].labels(stats.pool).set(stats.size - stats.idle)
                self.pool["idle"].labels(stats.pool).set(stats.idle)
                self.pool["max_size"].labels(stats.pool).set(stats.max_size)
                self.pool["waiting"].labels(stats.pool).set(stats.waiting)

    def exposition(self) -> bytes:
        """The text format of every metric (of all workers, in multiprocess mode)."""
        self.refresh_pools()
        if self.registry is not None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(self.multiproc_dir))  # type: ignore[no-untyped-call]
        return generate_latest(registry)

    def process_exited(self) -> None:
        """Drop this process's live gauges from the multiprocess files (at shutdown)."""
        if self.multiproc_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), str(self.multiproc_dir))  # type: ignore[no-untyped-call]


_current: ContextVar[Metrics | None] = ContextVar("newsgraph_metrics", default=None)


@contextlib.contextmanager
def use_metrics(metrics: Metrics) -> Iterator[None]:
    """Make `metrics` the current request's (see `current_metrics`)."""
    token = _current.set(metrics)
    try:
        yield
    finally:
        _current.reset(token)


def current_metrics() -> Metrics | None:
    """The metrics of the app serving the current request; None outside a request."""
    return _current.get()


def count_ingest(statuses: Iterable[str]) -> None:
    """Count ingest results by status (a no-op outside a request, as in `newsgraph ingest`)."""
    metrics = _current.get()
    if metrics is not None:
        metrics.count_ingest(statuses)
