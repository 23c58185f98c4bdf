"""Connection pools and the one door every SQL statement goes through.

`Database` wraps a primary pool (writes) and an optional replica pool (reads). Each statement
is counted in the current `StatementLog`, a contextvar set per request, which is how tests
prove that a query's statement count depends on its shape, never on its page size.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from service.config import Settings
from service.errors import ServiceUnavailable

__all__ = ["Database", "StatementLog", "connect", "open_database", "track_statements"]


@dataclass(slots=True)
class StatementLog:
    """The SQL statements one request ran (texts kept only when `record` is set)."""

    record: bool = False
    count: int = 0
    statements: list[str] = field(default_factory=list)

    def add(self, sql: str) -> None:
        self.count += 1
        if self.record:
            self.statements.append(sql)


_current_log: ContextVar[StatementLog | None] = ContextVar("newsgraph_statement_log", default=None)


@contextlib.contextmanager
def track_statements(*, record: bool = False) -> Iterator[StatementLog]:
    """Count (and optionally keep) the statements run in this context."""
    log = StatementLog(record=record)
    token = _current_log.set(log)
    try:
        yield log
    finally:
        _current_log.reset(token)


def _note(sql: str) -> None:
    log = _current_log.get()
    if log is not None:
        log.add(sql)


async def _init_connection(conn: asyncpg.Connection[Any]) -> None:
    for name in ("json", "jsonb"):
        await conn.set_type_codec(
            name,
            schema="pg_catalog",
            encoder=lambda v: orjson.dumps(v).decode(),
            decoder=orjson.loads,
        )


async def connect(dsn: str) -> asyncpg.Connection[Any]:
    """One connection with the pool's codecs (for tests and one-off scripts)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    await _init_connection(conn)
    return conn


# Errors that mean "the database is not there right now", as opposed to a bad statement.
_UNAVAILABLE = (
    OSError,
    TimeoutError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
)


class Database:
    """Runs SQL on the right pool; the db modules take one of these, never a pool."""

    def __init__(
        self,
        primary: asyncpg.Pool[Any] | asyncpg.Connection[Any],
        replica: asyncpg.Pool[Any] | None = None,
        *,
        acquire_timeout: float = 5.0,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._acquire_timeout = acquire_timeout
        # A single connection (tests run inside one rolled-back transaction) serves one
        # statement at a time, while DataLoaders issue theirs concurrently.
        self._lock = asyncio.Lock() if isinstance(primary, asyncpg.Connection) else None

    def primary(self) -> Database:
        """This database with reads on the primary too: read-your-own-writes after a write."""
        if self._replica is None:
            return self
        return Database(self._primary, acquire_timeout=self._acquire_timeout)

    @contextlib.asynccontextmanager
    async def _connection(
        self, *, write: bool
    ) -> AsyncIterator[asyncpg.Connection[Any] | PoolConnectionProxy[Any]]:
        source = self._primary if write or self._replica is None else self._replica
        try:
            if isinstance(source, asyncpg.Connection):
                assert self._lock is not None
                async with self._lock:
                    yield source
            else:
                async with source.acquire(timeout=self._acquire_timeout) as conn:
                    yield conn
        except _UNAVAILABLE as exc:
            raise ServiceUnavailable("The database is unavailable; retry shortly.") from exc

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        _note(sql)
        async with self._connection(write=False) as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        _note(sql)
        async with self._connection(write=False) as conn:
            return await conn.fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        _note(sql)
        async with self._connection(write=False) as conn:
            return await conn.fetchval(sql, *args)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Writer]:
        """A transaction on the primary; statements run through the returned `Writer`."""
        async with self._connection(write=True) as conn, conn.transaction():
            yield Writer(conn)


class Writer:
    """Statements inside one write transaction (see `Database.transaction`)."""

    def __init__(self, conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any]) -> None:
        self.conn = conn

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        _note(sql)
        return await self.conn.fetch(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        _note(sql)
        return await self.conn.fetchval(sql, *args)

    async def execute(self, sql: str, *args: object) -> str:
        _note(sql)
        return await self.conn.execute(sql, *args)


async def _create_pool(dsn: str, settings: Settings, role: str) -> asyncpg.Pool[Any]:
    return await asyncpg.create_pool(
        dsn,
        min_size=settings.pool_min_size,
        max_size=settings.pool_max_size,
        init=_init_connection,
        timeout=settings.pool_acquire_timeout,
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
        max_inactive_connection_lifetime=300,
        # 0 behind PgBouncer in transaction mode, where prepared statements do not survive.
        statement_cache_size=settings.statement_cache_size,
        server_settings={
            "application_name": f"newsgraph-{role}",
            "statement_timeout": str(settings.statement_timeout_ms),
        },
    )


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[Database]:
    """Open the pools for `settings.database_url` (and the replica), close them on exit."""
    if not settings.database_url:
        raise ValueError("open_database needs settings.database_url")
    primary = await _create_pool(settings.database_url, settings, "primary")
    replica = None
    try:
        if settings.database_replica_url:
            replica = await _create_pool(settings.database_replica_url, settings, "replica")
        yield Database(primary, replica, acquire_timeout=settings.pool_acquire_timeout)
    finally:
        for pool in (replica, primary):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=10)
                except TimeoutError:
                    pool.terminate()
