"""Change notifications (migrations 0006 and 0013): heard only when a statement changed rows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest_asyncio

from service.db.counters import fold_counts
from service.db.notify import CHANNEL
from service.db.pool import Database, connect
from service.db.takedowns import remove_articles
from service.ingest.pipeline import ingest_batch
from tests.factories import article_input


class Heard:
    def __init__(self) -> None:
        self.tables: list[str] = []

    async def after_commit(self) -> set[str]:
        """The tables announced since the last call (notifications follow their commit)."""
        await asyncio.sleep(0.2)
        tables, self.tables = set(self.tables), []
        return tables


@pytest_asyncio.fixture
async def heard(database_url: str) -> AsyncIterator[Heard]:
    listener: asyncpg.Connection = await connect(database_url)
    found = Heard()
    try:
        await listener.add_listener(CHANNEL, lambda *args: found.tables.append(args[3]))
        yield found
    finally:
        await listener.close()


async def test_an_unchanged_resend_tells_no_cache_of_a_change(db: Database, heard: Heard) -> None:
    item = article_input(entities=[{"name": "Notify Person", "kind": "PERSON"}])
    [created] = await ingest_batch(db, [item])
    assert created.status == "CREATED"
    assert {"articles", "article_entities"} <= await heard.after_commit()
    await fold_counts(db)
    await heard.after_commit()
    [again] = await ingest_batch(db, [item])  # a partner re-sending its feed
    assert again.status == "UNCHANGED"
    assert await heard.after_commit() == set()
    [changed] = await ingest_batch(db, [dict(item, title="A new title for the story")])
    assert changed.status == "UPDATED"
    assert "articles" in await heard.after_commit()


async def test_a_removal_is_heard(db: Database, heard: Heard) -> None:
    [stored] = await ingest_batch(db, [article_input()])
    assert stored.article_id is not None
    await heard.after_commit()
    await remove_articles(db, [stored.article_id], "test", removed_by=None)
    assert "articles" in await heard.after_commit()
    # Removing it again changes nothing, and nothing is heard of it.
    await remove_articles(db, [stored.article_id], "again", removed_by=None)
    assert "articles" not in await heard.after_commit()
