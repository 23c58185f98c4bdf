"""Test database and app fixtures.

One database per session, on `TEST_DATABASE_URL`'s server when set, else on an embedded
server in a temp dir: migrated once and loaded with the bundled demo news, which read tests
share. Tests that write get `write_db`: one connection inside a transaction that is rolled
back afterwards, so they see their own rows and leave nothing behind.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from strawberry.types import ExecutionResult

from service.config import Settings
from service.db.embedded import EmbeddedPostgres
from service.db.migrate import upgrade
from service.db.pool import Database, connect, open_database
from service.demo import load_demo
from service.graphql import build_schema, make_context
from service.ingest.catalogue import LinkerCache
from service.related.lists import drain
from tests.support import app_client, create_database, drop_database


@pytest.fixture(scope="session")
def server_url() -> Iterator[str]:
    """A PostgreSQL server to create test databases on (its maintenance-database URL)."""
    url = os.environ.get("TEST_DATABASE_URL")
    if url:
        yield url
        return
    # The server runs as another user when we are root: it must be able to enter the dir.
    data_dir = Path(tempfile.mkdtemp(prefix="newsgraph-test-pg-", dir="/tmp"))
    data_dir.chmod(0o711)
    server = EmbeddedPostgres(
        data_dir / "data",
        server_options={"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"},
    )
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="session")
async def database_url(server_url: str) -> AsyncIterator[str]:
    """A migrated database holding the demo news, for this test session only."""
    name = f"newsgraph_test_{os.getpid()}"
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    try:
        yield url
    finally:
        await drop_database(server_url, name)


TEST_STATEMENT_TIMEOUT_MS = "30000"


@pytest.fixture(scope="session", autouse=True)
def _slow_machine_reads() -> Iterator[None]:
    """Servers and commands that tests start as processes inherit the environment: their
    reads get the same 30 s as the apps in process (see `settings`)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEWSGRAPH_STATEMENT_TIMEOUT_MS", TEST_STATEMENT_TIMEOUT_MS)
        yield


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    # No background indexer, related-lists refresher or counter folder in apps under test:
    # tests drain the queue and the log and fold the counters themselves, so what they read
    # does not depend on timing. A read may take 30 s instead of the default 5: a shared CI
    # machine stalls now and then (for instance in the immediate checkpoint that each scratch
    # database's DROP DATABASE forces), and a trivial read once hit the 5 s timeout there.
    # The tests of the timeout itself set their own.
    return Settings.from_environ(
        {
            "DATABASE_URL": database_url,
            "NEWSGRAPH_STATEMENT_TIMEOUT_MS": TEST_STATEMENT_TIMEOUT_MS,
            "NEWSGRAPH_DATA_DIR": "/nonexistent",
            "NEWSGRAPH_RELATED_INDEXER": "false",
            "NEWSGRAPH_RELATED_REFRESH_PERCENT": "0",
            "NEWSGRAPH_COUNT_FOLD_SECONDS": "0",
        }
    )


@pytest_asyncio.fixture(scope="session")
async def db(settings: Settings) -> AsyncIterator[Database]:
    async with open_database(settings) as database:
        await load_demo(database)
        await drain(database)  # the demo's related lists stored, as a running service has them
        yield database


@pytest_asyncio.fixture
async def write_db(database_url: str, db: Database) -> AsyncIterator[Database]:
    """A Database on one connection whose transaction is rolled back after the test (over
    the demo news: `db` loads them, so a test run alone sees what it sees in the suite)."""
    conn = await connect(database_url)
    tx = conn.transaction()
    await tx.start()
    try:
        yield Database(conn)
    finally:
        await tx.rollback()
        await conn.close()


class GraphQLRunner:
    """Runs operations in process, as the HTTP view would, with a fresh context each time."""

    def __init__(
        self, settings: Settings, db: Database, catalogue: LinkerCache | None = None
    ) -> None:
        self.settings = settings
        self.db = db
        self.catalogue = catalogue
        self.schema = build_schema(settings)

    async def __call__(self, query: str, **variables: Any) -> ExecutionResult:
        return await self.schema.execute(
            query,
            variable_values=variables,
            context_value=make_context(self.settings, self.db, catalogue=self.catalogue),
        )

    async def data(self, query: str, **variables: Any) -> dict[str, Any]:
        result = await self(query, **variables)
        assert result.errors is None, result.errors
        assert result.data is not None
        return result.data


@pytest.fixture
def gql(settings: Settings, db: Database) -> GraphQLRunner:
    return GraphQLRunner(settings, db)


@pytest_asyncio.fixture
async def gql_write(settings: Settings, write_db: Database) -> AsyncIterator[GraphQLRunner]:
    catalogue = LinkerCache()
    yield GraphQLRunner(settings, write_db, catalogue)
    await catalogue.close()


@pytest_asyncio.fixture
async def client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    async with app_client(settings, db) as http:
        yield http
