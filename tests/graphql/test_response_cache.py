"""The response cache: repeated pages come from memory; a committed write empties it everywhere."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from service.config import Settings
from service.db.migrate import upgrade
from service.db.pool import open_database
from service.graphql.response_cache import ResponseCache
from service.resources import operations_dir
from tests.support import app_client, create_database, drop_database

FEED = (operations_dir() / "feed.graphql").read_text(encoding="utf-8")
NDJSON = {"content-type": "application/x-ndjson"}


def test_an_entry_read_before_a_change_is_not_kept() -> None:
    cache = ResponseCache()
    cache.set_listening(True)
    generation = cache.generation
    cache.changed("articles")  # a write committed while the page was being read
    cache.put("k", b"{}", generation)
    assert cache.get("k") is None
    cache.put("k", b"{}", cache.generation)
    assert cache.get("k") == b"{}"
    cache.set_listening(False)  # the listener lost its connection: nothing is trusted
    assert cache.get("k") is None
    cache.put("k", b"{}", cache.generation)
    assert cache.get("k") is None


@pytest.fixture
async def fresh_settings(server_url: str, settings: Settings) -> AsyncIterator[Settings]:
    name = f"newsgraph_test_cache_{os.getpid()}"
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    try:
        yield replace(settings, database_url=url, response_cache=True)
    finally:
        await drop_database(server_url, name)


@contextlib.asynccontextmanager
async def _worker(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with open_database(settings) as db, app_client(settings, db) as http:
        yield http


async def _feed(http: httpx.AsyncClient) -> list[str]:
    response = await http.post("/graphql", json={"query": FEED, "variables": {"first": 5}})
    data: Any = response.json()["data"]
    return [edge["node"]["title"] for edge in data["articles"]["edges"]]


async def _ingest(http: httpx.AsyncClient, title: str) -> None:
    line = {"url": f"https://example.com/{title}", "title": title, "language": "en",
            "publishedAt": "2026-01-01T00:00:00Z", "source": {"domain": "example.com"}}  # fmt: skip
    answer = await http.post("/v1/ingest", content=orjson.dumps(line) + b"\n", headers=NDJSON)
    assert b"CREATED" in answer.content, answer.content


async def _appears(http: httpx.AsyncClient, title: str, present: bool = True) -> None:
    started = time.monotonic()
    while time.monotonic() - started < 1.0:
        if (title in await _feed(http)) == present:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"{title!r} {'not ' if present else 'still '}in the feed after 1 s")


async def test_a_new_article_reaches_every_workers_cached_feed_within_a_second(
    fresh_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    async with _worker(fresh_settings) as one, _worker(fresh_settings) as two:
        await _ingest(one, "first-story")
        await asyncio.sleep(0.2)  # both listeners are connected
        assert await _feed(one) == await _feed(two) == ["first-story"]
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="newsgraph.access"):
            assert await _feed(two) == ["first-story"]
        (line,) = [r for r in caplog.records if r.name == "newsgraph.access"]
        assert line.sql_statements == 0  # type: ignore[attr-defined]  # from the cache
        await _ingest(one, "second-story")  # written through worker one
        await _appears(two, "second-story")  # seen through worker two's cache
        await _appears(one, "second-story")


async def test_a_takedown_leaves_every_workers_cached_feed_within_a_second(
    fresh_settings: Settings,
) -> None:
    delete = 'mutation($u: [String!]) { deleteArticles(urls: $u, reason: "court") { status } }'
    async with _worker(fresh_settings) as one, _worker(fresh_settings) as two:
        await _ingest(one, "kept-story")
        await _ingest(one, "removed-story")
        await asyncio.sleep(0.2)  # both listeners are connected
        assert set(await _feed(two)) == {"kept-story", "removed-story"}  # now cached
        answer = await one.post(
            "/graphql",
            json={"query": delete, "variables": {"u": ["https://example.com/removed-story"]}},
        )
        assert answer.json()["data"]["deleteArticles"] == [{"status": "REMOVED"}], answer.text
        await _appears(two, "removed-story", present=False)
        assert await _feed(two) == ["kept-story"]
