"""The per-request GraphQL context: settings, database, fresh loaders, the entity linker."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from strawberry.types import Info as StrawberryInfo

from service.config import Settings
from service.db.pool import Database
from service.graphql.loaders import Loaders
from service.ingest.catalogue import LinkerCache
from service.ingest.linking import Linker

__all__ = ["Context", "Info", "make_context"]


@dataclass(slots=True)
class Context:
    settings: Settings
    db: Database
    loaders: Loaders
    catalogue: LinkerCache | None = None
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    async def linker(self) -> Linker | None:
        """The process's entity linker (None when linking is off, as in some tests)."""
        return await self.catalogue.get(self.db) if self.catalogue is not None else None

    def read_own_writes(self) -> None:
        """From now on, read from the primary, so a mutation's result shows what it wrote."""
        self.db = self.db.primary()
        self.loaders = Loaders(self.db, self.settings.count_cap)

    def catalogue_changed(self) -> None:
        if self.catalogue is not None:
            self.catalogue.invalidate()


Info = StrawberryInfo[Context, None]


def make_context(
    settings: Settings,
    db: Database,
    request_id: str | None = None,
    catalogue: LinkerCache | None = None,
) -> Context:
    """A context with loaders of its own; one per request, never shared."""
    return Context(
        settings=settings,
        db=db,
        loaders=Loaders(db, settings.count_cap),
        catalogue=catalogue,
        request_id=request_id or uuid.uuid4().hex,
    )
