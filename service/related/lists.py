"""Related stories served from stored lists, refreshed in the background.

Ranking an article's related stories online costs two statements and several milliseconds of
Python (`find_related`: ~4 ms per article with its 80-candidate rescoring, decoding
included); an article page is read far more often than its neighbourhood changes. So
each article's list for the default arguments (`windowDays` 30, no filters) is stored, up to
`LIST_SIZE` items, exactly as `find_related` ranks it, and served while it is valid: while no
row for the article waits in the refresh log (migration 0008). Triggers on `article_signals`
append those rows when an article is indexed or changes (it may then leave the lists of the
articles in its old list, and enter those of the articles in its new one: relevance is
nearly symmetric. The refresher re-ranks those too, the "cascade", skipping full lists whose
lowest score is clearly above the article's, and lists ranked after the article's change was
committed: migration 0009), and when an article is taken down or excluded (every list naming
it). Other arguments, and articles whose list is missing or stale, are
ranked online: an answer is always either a valid stored list or the online ranking.

`Refresher` works the log in the indexer process (`service.related.worker`) or in each server
process, in small batches, using at most `share` of the wall time (a fifth of it while the
process ingests, or indexes a backlog); `drain` works it to the end (tests, benches,
`newsgraph refresh-related`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Final

from service.db import related_lists
from service.db.pool import Database
from service.db.records import ArticleRecord, SourceRecord
from service.errors import ServiceUnavailable
from service.related.find_related import RelatedItem, RelatedQuery, find_related

__all__ = [
    "LIST_QUERY",
    "LIST_SIZE",
    "Refresher",
    "Related",
    "decode_items",
    "drain",
    "encode_items",
    "ingesting",
    "list_rows",
    "note_ingest",
    "refresh_once",
    "related_stories",
    "rest_after",
    "running_refresher",
    "stored_query",
]

log = logging.getLogger(__name__)

LIST_SIZE: Final = 20
LIST_WINDOW_DAYS: Final = 30
LIST_QUERY: Final = RelatedQuery(first=LIST_SIZE, window_days=LIST_WINDOW_DAYS)
REFRESH_BATCH: Final = 100
CASCADE_MARGIN: Final = 0.05
# In the background: small batches (the ranking holds the event loop ~4 ms per article),
# and a fifth of the share while this process ingests (bulk loads first; lists catch up).
BACKGROUND_BATCH: Final = 2
BUSY_DIVISOR: Final = 5
BUSY_SECONDS: Final = 2.0
REPORT_SECONDS: Final = 5.0
_last_ingest = -BUSY_SECONDS


def note_ingest() -> None:
    """Called by this process's ingest paths (and by the indexer process while it has a
    backlog): the refresher slows down for a while."""
    global _last_ingest
    _last_ingest = time.monotonic()


def ingesting() -> bool:
    """Whether this process ingested in the last `BUSY_SECONDS` (any thread may ask)."""
    return time.monotonic() - _last_ingest < BUSY_SECONDS


def rest_after(spent: float, share: float) -> float:
    """Seconds to rest after `spent` seconds of work, to use at most `share` of the time (a
    fifth of it while this process ingests)."""
    if ingesting():
        share /= BUSY_DIVISOR
    return spent * (1 / share - 1)


def stored_query(query: RelatedQuery) -> bool:
    """Whether a stored list answers `query` (its first `query.first` items)."""
    return (
        query.first <= LIST_SIZE
        and query.window_days == LIST_WINDOW_DAYS
        and not (query.include_same_source or query.include_duplicates)
        and not (query.exclude or query.languages)
    )


def encode_items(items: Sequence[RelatedItem]) -> str:
    """`[article id, score, text similarity, time gap, relation, [entity ids], source id]`
    per item: the article page's statement reads the first six as they are."""
    rows = [
        [i.article_id, i.score, i.text_similarity, i.time_gap_hours, i.relation,
         list(i.shared_entities), i.source_id]
        for i in items
    ]  # fmt: skip
    return json.dumps(rows, separators=(",", ":"))


def decode_items(text: str) -> list[RelatedItem]:
    return [
        RelatedItem(
            article_id=a, score=s, text_similarity=t, time_gap_hours=g, relation=r,
            shared_entities=tuple(e), source_id=src,
        )
        for a, s, t, g, r, e, src in json.loads(text)
    ]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Related:
    items: dict[int, list[RelatedItem]]  # parent article id -> its related items
    # Listed articles and their sources, read along with the stored lists that answered, and
    # in one statement after an online ranking: a page showing them needs no further one.
    articles: dict[int, ArticleRecord]
    sources: dict[int, SourceRecord]


async def related_stories(db: Database, parents: Sequence[int], query: RelatedQuery) -> Related:
    """Each parent's related items: its valid stored list when `query` allows, else online."""
    found = Related({}, {}, {})
    if stored_query(query):
        stored = await related_lists.fetch_valid_lists(db, parents, query.first)
        for article_id, text in stored.lists.items():
            found.items[article_id] = decode_items(text)[: query.first]
        found.articles.update(stored.articles)
        found.sources.update(stored.sources)
    missing = [p for p in parents if p not in found.items]
    if missing:
        ranked = await find_related(db, missing, query)
        found.items.update(ranked)
        # The listed articles and their sources in one statement, as a stored list brings them.
        if listed_ids := [x.article_id for items in ranked.values() for x in items]:
            listed = await related_lists.fetch_listed_articles(db, listed_ids)
            found.articles.update(listed.articles)
            found.sources.update(listed.sources)
    return found


def list_rows(found: dict[int, list[RelatedItem]]) -> list[related_lists.ListRow]:
    """The rows that store these rankings as lists (`LIST_QUERY`'s, up to `LIST_SIZE` items)."""
    return [
        related_lists.ListRow(
            i, encode_items(items), [x.article_id for x in items],
            items[-1].score if len(items) == LIST_SIZE else None,
        )
        for i, items in found.items()
    ]  # fmt: skip


async def refresh_once(db: Database, limit: int = REFRESH_BATCH) -> int:
    """Re-rank the articles of up to `limit` log rows; the number of rows done (0: none left)."""
    claimed = await related_lists.claim(db, limit)
    if not claimed.seqs:
        return 0
    ids = sorted(claimed.articles)
    # Ranked on committed data, before the transaction that stores them: an article written
    # meanwhile has a newer log row, so its list stays invalid until that one is done.
    found = await find_related(db, ids, LIST_QUERY)
    async with db.transaction() as w:
        cascading = [i for i in ids if claimed.articles[i]]
        before = await related_lists.fetch_item_ids(w, cascading)
        rows = list_rows(found)
        gone = [i for i in ids if i not in found]
        await related_lists.store_lists(w, rows, gone, claimed.snapshot)
        touched = set(ids)
        # The cascade: the article may leave the lists of its old neighbours, and enter those
        # of its new ones where it scores near their floor.
        leaving = {n for i in cascading for n in before.get(i, ()) if n not in touched}
        entering: dict[int, float] = {}
        for i in cascading:
            for x in found.get(i, ()):
                if x.article_id not in touched and x.article_id not in leaving:
                    entering[x.article_id] = max(entering.get(x.article_id, 0.0), x.score)
        # Lists ranked after the article's change was committed already account for it.
        await related_lists.enqueue_leaving(w, sorted(leaving), claimed.xids)
        await related_lists.enqueue_entrants(w, entering, CASCADE_MARGIN, claimed.xids)
        await related_lists.release(w, claimed)
    return len(claimed.seqs)


async def drain(db: Database, limit: int = REFRESH_BATCH) -> int:
    """Work the log until it is empty; the number of rows done."""
    done = 0
    while n := await refresh_once(db, limit):
        done += n
    return done


class Refresher:
    """Works the refresh log in the background, at most `share` of the wall time."""

    def __init__(
        self,
        db: Database,
        *,
        share: float,
        batch: int = BACKGROUND_BATCH,
        idle: float = 1.0,
        on_depth: Callable[[int, int], None] | None = None,
    ) -> None:
        self._db = db
        self._share = share
        self._batch = batch
        self._idle = idle
        self._on_depth = on_depth
        self._worked = 0
        self._reported = -REPORT_SECONDS

    async def _report(self, done: int) -> None:
        """Log depth for the metrics: when idle, else every REPORT_SECONDS (a count)."""
        self._worked += done
        now = time.monotonic()
        if self._on_depth is None or (done and now - self._reported < REPORT_SECONDS):
            return
        self._reported = now
        self._on_depth(await related_lists.queue_depth(self._db), self._worked)
        self._worked = 0

    async def run(self) -> None:
        while True:
            started = time.perf_counter()
            try:
                done = await refresh_once(self._db, self._batch)
                await self._report(done)
            except ServiceUnavailable:
                done = 0
                await asyncio.sleep(5 * self._idle)
            except Exception:
                log.exception("related lists: refresh failed")
                done = 0
                await asyncio.sleep(5 * self._idle)
            if not done:
                await asyncio.sleep(self._idle)
                continue
            await asyncio.sleep(rest_after(time.perf_counter() - started, self._share))


@contextlib.asynccontextmanager
async def running_refresher(
    db: Database, share: float, on_depth: Callable[[int, int], None] | None = None
) -> AsyncIterator[None]:
    """The background refresher for the lifetime of the context (none when `share` is 0)."""
    if share <= 0:
        yield
        return
    refresher = Refresher(db, share=share, on_depth=on_depth)
    task = asyncio.create_task(refresher.run(), name="related-lists")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
