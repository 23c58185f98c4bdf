"""The process's current entity linker, kept up to date with the catalogue in the database.

`LinkerCache.get` returns the linker built from the catalogue. The first call builds it (and
waits for that); later calls return at once, and at most every `check_interval` seconds one of
them starts a background task that compares the catalogue's version
(`service.db.catalogue.fetch_catalogue_version`) with the one the linker was built from and,
when it changed, reads the surfaces and builds a new linker in a worker thread. Requests keep
using the old linker until the new one is swapped in; a failed check or build is logged and
retried after the next interval, keeping the old linker. `invalidate()` makes the next `get`
check regardless of the interval (for example after loading catalogue entities), and
`refresh()` checks and rebuilds right away, for callers that must see the change at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence

from service.db.catalogue import (
    CatalogueVersion,
    SurfaceRecord,
    fetch_catalogue_version,
    fetch_surfaces,
)
from service.db.pool import Database
from service.ingest.linking import Linker, Surface

__all__ = ["LinkerCache", "build_linker"]

log = logging.getLogger("newsgraph.ingest")


def build_linker(records: Sequence[SurfaceRecord]) -> Linker:
    """A linker over the catalogue's surfaces (CPU-bound: run it in a worker thread)."""
    return Linker.build(Surface(r.entity_id, r.text, r.kind, r.article_count) for r in records)


class LinkerCache:
    """The current `Linker` of one process; see the module docstring."""

    def __init__(
        self, *, check_interval: float = 5.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.check_interval = check_interval
        self._clock = clock
        self._linker: Linker | None = None
        self._version: CatalogueVersion | None = None
        self._checked_at = float("-inf")
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    @property
    def version(self) -> CatalogueVersion | None:
        """The catalogue version the current linker was built from."""
        return self._version

    async def get(self, db: Database) -> Linker:
        """The current linker; the first call waits for it to be built."""
        linker = self._linker
        if linker is None:
            async with self._lock:
                if self._linker is None:
                    await self._check(db)
            assert self._linker is not None
            return self._linker
        if self._clock() - self._checked_at >= self.check_interval and (
            self._task is None or self._task.done()
        ):
            self._checked_at = self._clock()
            self._task = asyncio.create_task(self._refresh_in_background(db))
        return linker

    def invalidate(self) -> None:
        """Make the next `get` check the catalogue's version, however recent the last check."""
        self._checked_at = float("-inf")

    async def refresh(self, db: Database) -> bool:
        """Check the catalogue's version now and rebuild if it changed; True when rebuilt."""
        async with self._lock:
            return await self._check(db)

    async def wait(self) -> None:
        """Wait until a background check started by `get` (if any) has finished."""
        if self._task is not None:
            await self._task

    async def close(self) -> None:
        """Stop a background check (at shutdown); the current linker stays usable."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            await asyncio.wait([self._task])

    async def _refresh_in_background(self, db: Database) -> None:
        try:
            await self.refresh(db)
        except Exception:
            log.exception("could not refresh the entity linker; keeping the current one")

    async def _check(self, db: Database) -> bool:
        # Runs under self._lock. The version is read before the surfaces, so a change made
        # meanwhile shows as a newer version at the next check instead of being missed.
        self._checked_at = self._clock()
        version = await fetch_catalogue_version(db)
        if self._linker is not None and version == self._version:
            return False
        records = await fetch_surfaces(db)
        started = time.perf_counter()
        linker = await asyncio.to_thread(build_linker, records)
        log.info(
            "entity linker built: %d surfaces in %.2f s", linker.size, time.perf_counter() - started
        )
        self._linker, self._version = linker, version
        return True
