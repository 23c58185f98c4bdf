"""Give every GraphQL error a stable `extensions.code`, and mask the unexpected ones.

Client mistakes keep their message (it says what to fix). Anything else becomes
"Internal server error" with the request id, and is logged with its stack, so a client
never sees a trace and an operator can still find it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.extensions import SchemaExtension

from service.errors import NewsgraphError

__all__ = ["ErrorCodes"]

logger = logging.getLogger("newsgraph.graphql")

LIMIT_MESSAGES = ("exceeds maximum operation depth", "exceeds maximum")


def _coded(error: GraphQLError, code: str, message: str | None = None) -> GraphQLError:
    return GraphQLError(
        message if message is not None else error.message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        original_error=None,
        extensions={**(error.extensions or {}), "code": code},
    )


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        if result is None or not result.errors:
            return
        request_id = getattr(self.execution_context.context, "request_id", None)
        result.errors = [self._classify(error, request_id) for error in result.errors]

    def _classify(self, error: GraphQLError, request_id: str | None) -> GraphQLError:
        original = error.original_error
        if isinstance(original, NewsgraphError):
            return _coded(error, original.code, original.message)
        if isinstance(error, GraphQLSyntaxError):
            return _coded(error, "GRAPHQL_PARSE_FAILED")
        if original is None:
            if any(text in error.message for text in LIMIT_MESSAGES):
                return _coded(error, "LIMIT_EXCEEDED")
            if error.path is None:
                return _coded(error, "GRAPHQL_VALIDATION_FAILED")
            return _coded(error, "BAD_INPUT")
        logger.error(
            "unexpected error in GraphQL resolver (request %s)", request_id, exc_info=original
        )
        return _coded(
            error, "INTERNAL_SERVER_ERROR", f"Internal server error (request id {request_id})"
        )
