"""The order in which the batches of one ingest stream are written.

A stream's batches are prepared while earlier ones are written, and up to `writers` of them
are written at once, each in its own transaction (on its own pool connection). Line order
still decides: a batch writes beside the earlier batches still in flight only when it shares
no article with them. Each batch claims the URLs of its items and the canonical URLs of the
stored articles those URLs already belong to; a batch that claims anything an earlier
in-flight batch claims waits until that batch has ended (committed, or failed), so two
versions of an article are applied in line order, and an item whose URL an earlier batch is
about to record finds it recorded. A batch that waits does so before its transaction begins,
so it holds no lock that the batch it waits for could need.

    order = WriteOrder(writers=2)
    turn = order.next()              # in line order, one per batch
    await turn.wait_for_room()       # the batch `writers` places back has ended
    if turn.shares_writes:
        await turn.claim(urls)       # waits for earlier batches in flight that share any
    ...write...
    turn.finish(error)

If an earlier batch failed, a batch that has not begun writing raises `EarlierBatchFailed`
instead (the stream reports the earlier failure and stops); one already writing completes.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable

__all__ = ["EarlierBatchFailed", "WriteOrder", "WriteTurn"]


class EarlierBatchFailed(RuntimeError):
    """A batch was not written because one before it in its stream failed."""


class WriteTurn:
    """One batch's place in its stream's order of writes."""

    def __init__(self, before: Iterable[WriteTurn], writers: int) -> None:
        earlier = list(before)
        # With one writer every batch waits for the one before: nobody reads claims.
        self.shares_writes = writers > 1
        # The batches that must have ended before this one writes, and those it may write
        # beside unless it shares an article with them.
        cut = max(len(earlier) - (writers - 1), 0)
        self._after: list[WriteTurn] = earlier[:cut]
        self._beside: list[WriteTurn] = earlier[cut:]
        self.claims: frozenset[str] | None = None  # None until claimed (or ended)
        self.error: BaseException | None = None
        self._claimed = asyncio.Event()
        self._ended = asyncio.Event()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def wait_for_room(self) -> None:
        """Wait until fewer than `writers` earlier batches of the stream are in flight."""
        for turn in self._after:
            await turn._ended.wait()
        self._raise_if_failed()
        self._after = []

    async def claim(self, claims: Iterable[str]) -> None:
        """Publish what this batch writes; wait for the earlier batches in flight that claim
        any of it (after `wait_for_room`). Every batch must claim when `shares_writes`:
        later batches wait for its claims."""
        self.claims = frozenset(claims)
        self._claimed.set()
        for turn in self._beside:
            if turn.ended:
                continue
            await turn._claimed.wait()
            if turn.claims is None or not turn.claims.isdisjoint(self.claims):
                await turn._ended.wait()
        self._raise_if_failed()

    def finish(self, error: BaseException | None = None) -> None:
        """The batch ended: committed (no error), failed or cancelled."""
        self.error = error
        self._claimed.set()
        self._ended.set()
        self._after, self._beside = [], []  # later turns keep no chain of earlier ones alive

    def _raise_if_failed(self) -> None:
        for turn in (*self._after, *self._beside):
            if turn.error is not None:
                raise EarlierBatchFailed("an earlier batch of this stream failed")


class WriteOrder:
    """Hands out the turns of one stream's batches, in line order."""

    def __init__(self, writers: int = 1) -> None:
        if writers < 1:
            raise ValueError("writers must be at least 1")
        self.writers = writers
        self._recent: deque[WriteTurn] = deque(maxlen=writers)

    def next(self) -> WriteTurn:
        turn = WriteTurn(self._recent, self.writers)
        self._recent.append(turn)
        return turn
