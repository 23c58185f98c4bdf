"""The ASGI application: routes, lifespan (database pools) and the GraphQL mount.

`create_app()` takes no arguments when uvicorn calls it (`--factory`), reading settings from
the environment; tests pass settings and an open `Database`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import Any, TypedDict

from starlette.applications import Starlette
from starlette.routing import Route
from strawberry.asgi import GraphQL

from service.config import ConfigError, Settings
from service.db.pool import Database, open_database
from service.graphql import Context, build_schema, make_context
from service.ingest.catalogue import LinkerCache
from service.rest.health import healthz, readyz
from service.rest.ingest import ingest_ndjson
from service.rest.openapi import openapi

__all__ = ["create_app"]


class State(TypedDict):
    db: Database
    settings: Settings
    catalogue: LinkerCache


class GraphQLView(GraphQL[Context, None]):
    def __init__(self, settings: Settings) -> None:
        super().__init__(
            build_schema(settings),
            graphql_ide="graphiql" if settings.graphiql else None,
            allow_queries_via_get=True,
            subscription_protocols=(),
        )
        self.settings = settings

    async def get_context(self, request: Any, response: Any) -> Context:
        state = request.state
        return make_context(
            self.settings, state.db, request.headers.get("x-request-id"), state.catalogue
        )


def create_app(settings: Settings | None = None, *, database: Database | None = None) -> Starlette:
    """Assemble the service; with `database`, use it instead of opening pools."""
    settings = settings or Settings.from_environ()
    if database is None and not settings.database_url:
        raise ConfigError(
            "DATABASE_URL is not set: use `newsgraph serve`, which starts an embedded database"
        )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[State]:
        # One entity linker per process, rebuilt in the background when the catalogue changes.
        catalogue = LinkerCache()
        try:
            if database is not None:
                yield {"db": database, "settings": settings, "catalogue": catalogue}
                return
            async with open_database(settings) as db:
                yield {"db": db, "settings": settings, "catalogue": catalogue}
        finally:
            await catalogue.close()

    graphql = GraphQLView(settings)
    return Starlette(
        routes=[
            Route("/graphql", graphql, methods=["GET", "POST"]),
            # The ingest stream has no total size limit, only a per-line one; a route's
            # max_body_size replaces the app's for that route (also upwards).
            Route("/v1/ingest", ingest_ndjson, methods=["POST"], max_body_size=sys.maxsize),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
        ],
        lifespan=lifespan,
        max_body_size=settings.max_body_bytes,
    )
