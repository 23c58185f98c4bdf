"""The GraphQL face: `build_schema(settings)` and the per-request context."""

from service.graphql.context import Context, make_context
from service.graphql.schema import build_schema, export_sdl

__all__ = ["Context", "build_schema", "export_sdl", "make_context"]
