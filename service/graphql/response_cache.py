"""An in-memory cache of compiled-operation answers, emptied by every write to the data.

Off by default (`NEWSGRAPH_RESPONSE_CACHE=true` turns it on). It keeps the `data` JSON of
the compiled operations (`service.graphql.compiled`) by document and arguments; those pages
are public (the same for every caller), and each request is still authenticated, costed and
charged, and gets its own `extensions`. Each process listens for `newsgraph_changes`
(`service.db.notify`): any write to the tables behind the pages empties the cache, in every
worker, within the time PostgreSQL takes to deliver a NOTIFY after commit (milliseconds).

Races: an answer read before a write commits but stored after its notification would be
stale, so an entry is stored only if no notification arrived while it was being read (the
`generation` it was read under is still current). While the listener is disconnected
nothing is cached. Entries also expire after `MAX_AGE` seconds: with a read replica, a page
read just after a notification may reflect the replica's lag.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Final

__all__ = ["ResponseCache"]

MAX_ENTRIES: Final = 10_000
MAX_AGE: Final = 60.0


class ResponseCache:
    def __init__(self, *, max_entries: int = MAX_ENTRIES, max_age: float = MAX_AGE) -> None:
        self.max_entries = max_entries
        self.max_age = max_age
        self.generation = 0
        self.listening = False
        self._entries: OrderedDict[Hashable, tuple[float, bytes]] = OrderedDict()

    def changed(self, table: str = "") -> None:
        """A write committed: forget everything (pages join several tables)."""
        self.generation += 1
        self._entries.clear()

    def set_listening(self, listening: bool) -> None:
        """Whether writes are heard; what was kept before is stale either way."""
        self.listening = listening
        self.changed()

    def get(self, key: Hashable) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        stored, value = entry
        if time.monotonic() - stored > self.max_age:
            del self._entries[key]
            return None
        return value

    def put(self, key: Hashable, value: bytes, generation: int) -> None:
        """Keep `value` if nothing changed since `generation` was read."""
        if not self.listening or generation != self.generation:
            return
        self._entries[key] = (time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
