"""Logs, request ids, the access log and tracing: what an operator sees of each request.

* Logging: `configure_logging(settings)` (and `logging_config(settings)`, the same as a
  dictConfig for uvicorn's worker processes) writes one JSON object per line to stderr:
  `time`, `level`, `logger`, `message`, the record's `extra` fields, the current request's
  `request_id`, and `stack` for exceptions.
* `RequestMiddleware` (pure ASGI, so contextvars set here reach the endpoints): takes the
  client's `X-Request-ID` when it is 1-128 characters of `[A-Za-z0-9._-]`, else makes one; puts
  it in `scope["state"]` and in the request headers (so every reader sees the same id), and in
  the answer. It counts the request's SQL statements and logs one `newsgraph.access` line per
  request with method, path, status, duration, GraphQL operation name, API key id and
  statement count, and records the request in the metrics.
* Tracing (OpenTelemetry): only when an exporter is configured (`tracing_enabled`); nothing of
  OpenTelemetry is imported otherwise.
"""

from __future__ import annotations

import logging
import logging.config
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.config import ConfigError, Settings
from service.db.pool import track_statements
from service.metrics import CONTENT_TYPE, Metrics, use_metrics

__all__ = [
    "JsonFormatter",
    "RequestContext",
    "RequestMiddleware",
    "Tracing",
    "configure_logging",
    "current_request",
    "logging_config",
    "metrics_endpoint",
    "set_key_id",
    "set_operation",
    "start_tracing",
    "tracing_enabled",
]

access_log = logging.getLogger("newsgraph.access")

TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"
REQUEST_ID_HEADER: Final = b"x-request-id"
_VALID_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._-]{1,128}")
# Attributes every LogRecord has: anything else on a record came from `extra=`.
_RECORD_FIELDS: Final = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
    | {"message", "asctime", "color_message"}  # uvicorn's copy of the message, with colours
)


@dataclass(slots=True)
class RequestContext:
    """What the access log tells about the current request, filled in as it is served."""

    request_id: str
    operation: str | None = None
    key_id: int | str | None = None


_request: ContextVar[RequestContext | None] = ContextVar("newsgraph_request", default=None)


def current_request() -> RequestContext | None:
    return _request.get()


def set_operation(name: str | None) -> None:
    """Name the current request's GraphQL operation in its access-log line."""
    if (context := _request.get()) is not None:
        context.operation = name[:100] if name else None


def set_key_id(key_id: int | str | None) -> None:
    """Name the API key the current request was made with (for the authentication layer)."""
    if (context := _request.get()) is not None:
        context.key_id = key_id


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS)
        if "request_id" not in entry and (context := _request.get()) is not None:
            entry["request_id"] = context.request_id
        if record.exc_info:
            entry["stack"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack_info"] = self.formatStack(record.stack_info)
        return orjson.dumps(entry, default=str).decode()


def logging_config(settings: Settings) -> dict[str, Any]:
    """The dictConfig for `settings`: every logger to stderr, as JSON unless asked for text."""
    formatter: dict[str, Any] = (
        {"()": JsonFormatter} if settings.log_format == "json" else {"format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"newsgraph": formatter},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "newsgraph",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"level": settings.log_level, "handlers": ["stderr"]},
        # uvicorn's loggers keep handlers of their own unless told to pass records up.
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access")
        },
    }


def configure_logging(settings: Settings) -> None:
    """Send log records to stderr in the format `settings` asks for.

    Like `logging.basicConfig`, this does nothing when the root logger has handlers already
    (pytest's, say); uvicorn's processes are configured by `logging_config` instead.
    """
    handler = logging.StreamHandler()
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=settings.log_level, handlers=[handler])


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == REQUEST_ID_HEADER:
            text = value.decode("latin-1")
            if _VALID_REQUEST_ID.fullmatch(text):
                return text
            break
    return uuid.uuid4().hex


def _route(scope: Scope) -> str:
    # The path template of the route that matched (set by starlette's router), so label
    # values stay bounded whatever paths clients ask for.
    template = getattr(scope.get("route"), "path_format", None)
    return template if isinstance(template, str) else "unmatched"


class RequestMiddleware:
    """Request id, statement count, metrics and the access-log line of each HTTP request."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope["headers"])
        scope["headers"] = [
            *((k, v) for k, v in scope["headers"] if k != REQUEST_ID_HEADER),
            (REQUEST_ID_HEADER, request_id.encode()),
        ]
        scope.setdefault("state", {})["request_id"] = request_id
        context = RequestContext(request_id)
        status = 500  # what the server answers when the app fails before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).append("x-request-id", request_id)
            await send(message)

        token = _request.set(context)
        started = time.perf_counter()
        try:
            with track_statements() as statements, use_metrics(self.metrics):
                await self.app(scope, receive, send_with_id)
        finally:
            seconds = time.perf_counter() - started
            method = scope["method"]
            self.metrics.observe_request(_route(scope), method, status, seconds, statements.count)
            if status == 429:  # only the rate limiter answers 429
                self.metrics.rate_limited.inc()
            self.metrics.refresh_pools()
            access_log.log(
                logging.INFO if status < 500 else logging.WARNING,
                "%s %s %d %.1f ms",
                method,
                scope["path"],
                status,
                seconds * 1000,
                extra={
                    "method": method,
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round(seconds * 1000, 2),
                    "operation": context.operation,
                    "key_id": context.key_id,
                    "request_id": request_id,
                    "sql_statements": statements.count,
                },
            )
            _request.reset(token)


def metrics_endpoint(metrics: Metrics) -> Callable[[Request], Awaitable[Response]]:
    """`GET /metrics`: the Prometheus text format."""

    async def endpoint(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=CONTENT_TYPE)

    return endpoint


def tracing_enabled(settings: Settings) -> bool:
    """True when OpenTelemetry's standard variables name an exporter (and not "none")."""
    exporter = (settings.otel_traces_exporter or "").strip().lower()
    if exporter == "none":
        return False
    return bool(exporter or settings.otel_exporter_otlp_endpoint)


class Tracing:
    """Tracing of one app: spans to the exporter until `shutdown()`."""

    def __init__(self, processor: Any, instrumentor: Any) -> None:
        self._processor = processor
        self._instrumentor = instrumentor

    def shutdown(self) -> None:
        """Stop the database spans and send what is buffered."""
        self._instrumentor.uninstrument()
        self._processor.shutdown()


def start_tracing(settings: Settings, *, exporter: Any = None) -> Tracing:
    """Trace requests, GraphQL operations and SQL statements to `exporter` (default: the
    one OTEL_TRACES_EXPORTER names, `otlp` over HTTP or `console`).

    The SDK reads its other standard variables itself (endpoint, headers, sampler). The
    tracer provider is OpenTelemetry's global one, so other instrumentations join in.
    """
    from opentelemetry import trace
    from opentelemetry.instrumentation.asyncpg import AsyncPGInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    if exporter is None:
        kind = (settings.otel_traces_exporter or "otlp").strip().lower()
        if kind == "otlp":
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter()
        elif kind == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporter = ConsoleSpanExporter()
        else:
            raise ConfigError(f"OTEL_TRACES_EXPORTER must be otlp, console or none, got {kind!r}")
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider(
            resource=Resource.create({"service.name": settings.otel_service_name})
        )
        trace.set_tracer_provider(provider)
    processor = BatchSpanProcessor(exporter)
    provider.add_span_processor(processor)
    instrumentor = AsyncPGInstrumentor()  # type: ignore[no-untyped-call]
    if not instrumentor.is_instrumented_by_opentelemetry:
        instrumentor.instrument(tracer_provider=provider)
    return Tracing(processor, instrumentor)
