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


def _code(error: GraphQLError, code: str, message: str | None = None) -> None:
    # Errors are rewritten in place: strawberry keeps parse and validation errors in more than
    # one list, and every one of them must carry the code.
    error.extensions = {**(error.extensions or {}), "code": code}
    if message is not None:
        error.message = message
    error.original_error = None


class ErrorCodes(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        yield
        context = self.execution_context
        request_id = getattr(context.context, "request_id", None)
        result_errors = context.result.errors if context.result is not None else None
        seen: set[int] = set()
        for error in [*(context.pre_execution_errors or []), *(result_errors or [])]:
            if id(error) not in seen:
                seen.add(id(error))
                self._classify(error, request_id)

    def _classify(self, error: GraphQLError, request_id: str | None) -> None:
        if "code" in (error.extensions or {}):
            return
        original = error.original_error
        if isinstance(original, NewsgraphError):
            _code(error, original.code, original.message)
        elif isinstance(error, GraphQLSyntaxError):
            _code(error, "GRAPHQL_PARSE_FAILED")
        elif original is None:
            if any(text in error.message for text in LIMIT_MESSAGES):
                _code(error, "LIMIT_EXCEEDED")
            elif error.path is None:
                _code(error, "GRAPHQL_VALIDATION_FAILED")
            else:
                _code(error, "BAD_INPUT")
        else:
            logger.error(
                "unexpected error in GraphQL resolver (request %s)", request_id, exc_info=original
            )
            _code(
                error, "INTERNAL_SERVER_ERROR", f"Internal server error (request id {request_id})"
            )
