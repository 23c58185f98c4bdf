"""GraphQL operations in the metrics and the access log; the tracing extension.

`OperationMetrics` times each operation (parse, validation and execution) and counts it by
name, type and outcome, and its errors by code. It must come before `ErrorCodes` in the
schema's extensions: strawberry leaves the hooks in reverse order, so its end then runs after
the errors have their codes.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable, Iterator
from typing import Any, Final

from graphql import GraphQLError
from strawberry.extensions import SchemaExtension

from service.metrics import current_metrics
from service.observability import set_operation

__all__ = ["OperationMetrics", "outcome", "tracing_extension"]

# Codes that mean "our fault" (or the database's); all others are the client's.
SERVER_CODES: Final = frozenset({"INTERNAL_SERVER_ERROR", "SERVICE_UNAVAILABLE"})


def outcome(codes: list[str]) -> str:
    """ "ok", "client_error" or "server_error" for an operation with errors of these codes."""
    if not codes:
        return "ok"
    return "server_error" if SERVER_CODES.intersection(codes) else "client_error"


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self._record(time.perf_counter() - started)

    def _record(self, seconds: float) -> None:
        context = self.execution_context
        name = context.operation_name
        set_operation(name)
        metrics = current_metrics()
        if metrics is None:
            return
        try:
            kind = context.operation_type.value
        except Exception:  # no document (a parse error) or no operation of that name
            kind = "unknown"
        result_errors = context.result.errors if context.result is not None else None
        errors: dict[int, GraphQLError] = {
            id(e): e for e in [*(context.pre_execution_errors or []), *(result_errors or [])]
        }
        codes = [str((e.extensions or {}).get("code", "OTHER")) for e in errors.values()]
        metrics.observe_operation(name, kind, outcome(codes), seconds, codes)


def _drop_text_arguments(args: dict[str, Any], info: Any) -> dict[str, Any]:
    # Search texts, URLs and ids may be personal: spans keep only numbers, flags and enums.
    return {k: v for k, v in args.items() if isinstance(v, int | float | enum.Enum)}


def tracing_extension() -> Callable[[], SchemaExtension]:
    """A factory of strawberry's OpenTelemetry extension (imported only when tracing is on)."""
    from strawberry.extensions.tracing import OpenTelemetryExtension

    return lambda: OpenTelemetryExtension(arg_filter=_drop_text_arguments)
