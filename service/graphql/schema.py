"""The strawberry schema, built from settings (limits come from there)."""

from __future__ import annotations

from collections.abc import Iterator
from functools import lru_cache
from typing import Any

import strawberry
from graphql import DocumentNode, GraphQLError, parse
from strawberry.extensions import SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig

from service.config import Settings
from service.graphql.errors import ErrorCodes
from service.graphql.limits import limit_extensions
from service.graphql.metrics import OperationMetrics, tracing_extension
from service.graphql.mutations import Mutation
from service.graphql.persisted import persisted_extensions
from service.graphql.queries import Query
from service.graphql.types import LONG_SCALAR, Article, Entity, Long, Source
from service.observability import tracing_enabled

__all__ = ["build_schema", "export_sdl"]

# Parses and validations of distinct documents are cached, bounded so unique query texts
# cannot grow memory without limit.
DOCUMENT_CACHE_SIZE = 256


@lru_cache(maxsize=DOCUMENT_CACHE_SIZE)
def _parsed(query: str, options: tuple[tuple[str, Any], ...]) -> DocumentNode | None:
    try:
        return parse(query, **dict(options))
    except GraphQLError:
        return None


class ParsedDocuments(SchemaExtension):
    """The parsed document of a query text seen before (parsing the article page's took
    ~0.5 ms, the related-stories query's ~0.2 ms). A text that does not parse is left to
    strawberry, which parses it again and reports the error as it does uncached: strawberry's
    own ParserCache raises syntax errors from inside its hook, which skips the other
    extensions' exit (and so our error codes)."""

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.query and context.graphql_document is None:
            options = tuple(sorted(context.parse_options.items()))
            context.graphql_document = _parsed(context.query, options)
        yield


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Do not log: ErrorCodes logs the unexpected errors, with their request id."""


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the limits of `settings`; without settings, only for export."""
    # OperationMetrics before ErrorCodes: hooks end in reverse order, so it sees the codes.
    extensions: list[object] = [OperationMetrics, ErrorCodes]
    if settings is not None:
        extensions += [
            ParsedDocuments,
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
            # After ErrorCodes, so their codes are set before it looks (exits run in reverse).
            *persisted_extensions(settings),
            *limit_extensions(settings),
        ]
        if tracing_enabled(settings):
            extensions.insert(0, tracing_extension())
    return Schema(
        query=Query,
        mutation=Mutation,
        types=[Article, Source, Entity],
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(
            auto_camel_case=True,
            scalar_map={Long: LONG_SCALAR},
            disable_field_suggestions=settings is not None and settings.env == "production",
        ),
    )


def export_sdl() -> str:
    """The SDL that `schema/schema.graphql` must equal."""
    return build_schema().as_str() + "\n"
