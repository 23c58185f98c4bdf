from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import httpx
import pytest_asyncio

from service.config import Settings
from service.db.migrate import downgrade, upgrade
from service.db.pool import open_database
from service.ingest.pipeline import ingest_batch
from tests.factories import article_input
from tests.support import app_client, create_database, drop_database


async def test_healthz_says_the_process_is_alive(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_readyz_is_ready_on_a_migrated_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ready"


@pytest_asyncio.fixture
async def behind_url(server_url: str) -> AsyncIterator[str]:
    name = f"newsgraph_behind_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        yield url
    finally:
        await drop_database(server_url, name)


async def _readyz(url: str) -> httpx.Response:
    settings = Settings.from_environ({"DATABASE_URL": url, "NEWSGRAPH_POOL_MIN_SIZE": "0"})
    async with open_database(settings) as db, app_client(settings, db) as http:
        return await http.get("/readyz")


async def test_readyz_is_503_with_a_reason_until_the_schema_is_at_head(behind_url: str) -> None:
    response = await _readyz(behind_url)
    assert response.status_code == 503
    assert "newsgraph migrate" in response.json()["reason"]
    await asyncio.to_thread(upgrade, behind_url)
    await asyncio.to_thread(downgrade, behind_url, "base")
    await asyncio.to_thread(upgrade, behind_url, "head")
    assert (await _readyz(behind_url)).status_code == 200


async def test_readyz_counts_the_related_queue_when_another_process_indexes(
    behind_url: str,
) -> None:
    await asyncio.to_thread(upgrade, behind_url)
    settings = Settings.from_environ({"DATABASE_URL": behind_url})
    assert settings.related_indexer == "process"  # the app itself runs no indexer
    async with open_database(settings) as db:
        results = await ingest_batch(
            db, [article_input(url=f"https://q.example/{n}") for n in (1, 2)]
        )
    assert [r.status for r in results] == ["CREATED", "CREATED"]
    answer = (await _readyz(behind_url)).json()
    assert (answer["status"], answer["relatedQueue"]) == ("ready", 2)


async def test_readyz_is_503_when_the_database_is_gone() -> None:
    # Nothing listens on port 1: the pool cannot connect, and readiness must say so quickly.
    settings = Settings.from_environ(
        {"DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x", "NEWSGRAPH_POOL_MIN_SIZE": "0",
         "NEWSGRAPH_POOL_ACQUIRE_TIMEOUT": "2"}
    )  # fmt: skip
    async with open_database(settings) as db, app_client(settings, db) as http:
        response = await http.get("/readyz")
    assert response.status_code == 503
    assert response.json()["reason"] == "the database does not answer"
