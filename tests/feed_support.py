"""Scratch databases for change-feed and takedown tests, whose writes must really commit.

The change feed numbers changes at commit (deferred triggers), which the rolled-back
`write_db` transaction never reaches, so these tests write to a migrated database of their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator

from service.config import Settings
from service.db.migrate import upgrade
from service.db.pool import Database, open_database
from tests.support import create_database, drop_database


@contextlib.asynccontextmanager
async def scratch_database(server_url: str, label: str) -> AsyncIterator[str]:
    """A migrated, empty database for this test process; dropped afterwards."""
    name = f"newsgraph_{label}_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        await asyncio.to_thread(upgrade, url)
        yield url
    finally:
        await drop_database(server_url, name)


@contextlib.asynccontextmanager
async def scratch_pool(
    server_url: str, label: str, settings: Settings
) -> AsyncIterator[tuple[str, Database]]:
    """`scratch_database`, and a pool on it: (its URL, the Database)."""
    async with (
        scratch_database(server_url, label) as url,
        open_database(settings.with_database(url)) as database,
    ):
        yield url, database
