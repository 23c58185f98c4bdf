"""The per-request GraphQL context: settings, database and fresh loaders."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from strawberry.types import Info as StrawberryInfo

from service.config import Settings
from service.db.pool import Database
from service.graphql.loaders import Loaders

__all__ = ["Context", "Info", "make_context"]


@dataclass(slots=True)
class Context:
    settings: Settings
    db: Database
    loaders: Loaders
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)


Info = StrawberryInfo[Context, None]


def make_context(settings: Settings, db: Database, request_id: str | None = None) -> Context:
    """A context with loaders of its own; one per request, never shared."""
    return Context(
        settings=settings,
        db=db,
        loaders=Loaders(db, settings.count_cap),
        request_id=request_id or uuid.uuid4().hex,
    )
