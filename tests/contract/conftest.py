"""The golden tests read a database of their own, holding the demo news and nothing else, so
what other tests commit to the shared session database cannot change a golden result."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest_asyncio

from service.config import Settings
from service.db.migrate import upgrade
from service.db.pool import Database, open_database
from service.demo import load_demo
from service.related.lists import drain
from tests.conftest import GraphQLRunner
from tests.support import create_database, drop_database


@pytest_asyncio.fixture(scope="module")
async def demo_db(server_url: str) -> AsyncIterator[tuple[Settings, Database]]:
    name = f"newsgraph_contract_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        await asyncio.to_thread(upgrade, url)
        settings = Settings.from_environ(
            {
                "DATABASE_URL": url,
                "NEWSGRAPH_POOL_MIN_SIZE": "1",
                "NEWSGRAPH_RELATED_REFRESH_PERCENT": "0",
            }
        )
        async with open_database(settings) as db:
            await load_demo(db)
            await drain(db)
            yield settings, db
    finally:
        await drop_database(server_url, name)


@pytest_asyncio.fixture
async def gql(demo_db: tuple[Settings, Database]) -> GraphQLRunner:
    return GraphQLRunner(*demo_db)
