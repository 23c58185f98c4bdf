"""The bundled demo news: hand-written titles and summaries of well-known events.

Written for this project (not taken from the outlets named as sources), in English and
Norwegian, so a first `newsgraph serve --demo` shows real-looking data.
"""

from __future__ import annotations

import importlib.resources
from collections import Counter
from typing import Any

import orjson

from service.db.counters import fold_counts
from service.db.pool import Database
from service.ingest.catalogue import LinkerCache
from service.ingest.pipeline import ingest_batch, load_catalogue
from service.related.indexer import drain

__all__ = ["demo_articles", "demo_entities", "load_demo"]

BATCH_SIZE = 100


def _read(name: str) -> list[dict[str, Any]]:
    text = (importlib.resources.files(__package__) / name).read_text(encoding="utf-8")
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def demo_entities() -> list[dict[str, Any]]:
    return _read("entities.jsonl")


def demo_articles() -> list[dict[str, Any]]:
    return _read("articles.jsonl")


async def load_demo(db: Database) -> Counter[str]:
    """Load the demo catalogue and articles (idempotent); counts of results by status."""
    await load_catalogue(db, demo_entities())
    linker = await LinkerCache().get(db)
    articles = demo_articles()
    statuses: Counter[str] = Counter()
    for start in range(0, len(articles), BATCH_SIZE):
        for result in await ingest_batch(db, articles[start : start + BATCH_SIZE], linker=linker):
            statuses[result.status] += 1
        # Related stories of the demo are there as soon as it is loaded (indexed batch by
        # batch, as a server's indexer keeping up with the ingest would).
        await drain(db)
    await fold_counts(db)  # counts exact once loaded, as a server's folder makes them
    return statuses
