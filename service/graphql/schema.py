"""The strawberry schema, built from settings (limits come from there)."""

from __future__ import annotations

import strawberry
from graphql import GraphQLError
from strawberry.extensions import QueryDepthLimiter, ValidationCache
from strawberry.schema.config import StrawberryConfig

from service.config import Settings
from service.graphql.errors import ErrorCodes
from service.graphql.mutations import Mutation
from service.graphql.queries import Query
from service.graphql.types import Article, Entity, Source

__all__ = ["build_schema", "export_sdl"]

# Validations of distinct documents are cached, bounded so unique query texts cannot grow
# memory without limit. strawberry's ParserCache is left out: it raises syntax errors from
# inside its hook, which skips the other extensions' exit (and so our error codes).
DOCUMENT_CACHE_SIZE = 256


class Schema(strawberry.Schema):
    def process_errors(self, errors: list[GraphQLError], execution_context: object = None) -> None:
        """Do not log: ErrorCodes logs the unexpected errors, with their request id."""


def build_schema(settings: Settings | None = None) -> strawberry.Schema:
    """The schema with the limits of `settings`; without settings, only for export."""
    extensions: list[object] = [ErrorCodes]
    if settings is not None:
        depth = settings.max_query_depth
        extensions += [
            lambda: QueryDepthLimiter(max_depth=depth),
            lambda: ValidationCache(maxsize=DOCUMENT_CACHE_SIZE),
        ]
    return Schema(
        query=Query,
        mutation=Mutation,
        types=[Article, Source, Entity],
        extensions=extensions,  # type: ignore[arg-type]
        config=StrawberryConfig(
            auto_camel_case=True,
            disable_field_suggestions=settings is not None and settings.env == "production",
        ),
    )


def export_sdl() -> str:
    """The SDL that `schema/schema.graphql` must equal."""
    return build_schema().as_str() + "\n"
