"""Connection pools and the one door every SQL statement goes through.

`Database` wraps a primary pool (writes) and an optional replica pool (reads). Each statement
is counted in the current `StatementLog`, a contextvar set per request, which is how tests
prove that a query's statement count depends on its shape, never on its page size.

Outages: a statement that cannot get a connection within the acquire timeout, or whose
connection is gone, raises `ServiceUnavailable` at once; nothing waits for the database to
come back. A read whose connection turned out to be dead (the server restarted since it was
last used) is retried once on a fresh connection. The app opens its pools `lazy`, so it
starts, and reports itself unready, while the database is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Final, TypeAlias, TypeVar

import asyncpg
import orjson
from asyncpg.pool import PoolConnectionProxy

from service.config import Settings
from service.errors import BadInput, ServiceUnavailable

__all__ = [
    "Database",
    "PoolStats",
    "StatementLog",
    "connect",
    "open_database",
    "track_statements",
]


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


log = logging.getLogger("newsgraph.db")

_T = TypeVar("_T")
_Conn: TypeAlias = "asyncpg.Connection[Any] | PoolConnectionProxy[Any]"

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
    asyncpg.exceptions.InternalClientError,
)
# A connection that died under a statement: the server restarted or dropped it. A read can be
# retried on another connection; a write cannot know whether it was applied. asyncpg reports
# some of these deaths as a protocol-state error (InternalClientError).
_LOST = (
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.ConnectionFailureError,
    asyncpg.exceptions.InternalClientError,
)


@dataclass(frozen=True, slots=True)
class PoolStats:
    """One pool's figures, for the metrics gauges."""

    pool: str
    size: int
    idle: int
    max_size: int
    waiting: int


class Database:
    """Runs SQL on the right pool; the db modules take one of these, never a pool."""

    def __init__(
        self,
        primary: asyncpg.Pool[Any] | asyncpg.Connection[Any],
        replica: asyncpg.Pool[Any] | None = None,
        *,
        acquire_timeout: float = 5.0,
        write_timeout_ms: int | None = None,
    ) -> None:
        self._primary = primary
        self._replica = replica
        self._acquire_timeout = acquire_timeout
        # Bulk writes (1,000 articles in one statement) may need longer than the per-statement
        # timeout that guards reads; None: the session's own.
        self._write_timeout_ms = write_timeout_ms
        # Requests waiting for a connection, per pool; shared with the copy primary() makes.
        self._waiting = {"primary": 0, "replica": 0}
        # asyncpg's pool hands connections out through an asyncio.Queue, whose get() is not
        # first come, first served: a request arriving just as a connection is released takes
        # it, and the waiter that was woken goes to the back of the line again, so under load
        # a few requests wait many turns (the p99 of page queries at 64 clients; asyncpg issue
        # #1247, open). A semaphore (FIFO: newcomers queue behind waiters) in front of each
        # pool restores the order.
        self._gates = {
            role: asyncio.Semaphore(pool.get_max_size())
            for role, pool in (("primary", primary), ("replica", replica))
            if isinstance(pool, asyncpg.Pool)
        }
        # A single connection (tests run inside one rolled-back transaction) serves one
        # statement at a time, while DataLoaders issue theirs concurrently.
        self._lock = asyncio.Lock() if isinstance(primary, asyncpg.Connection) else None

    def primary(self) -> Database:
        """This database with reads on the primary too: read-your-own-writes after a write."""
        if self._replica is None:
            return self
        database = Database(
            self._primary,
            acquire_timeout=self._acquire_timeout,
            write_timeout_ms=self._write_timeout_ms,
        )
        database._waiting = self._waiting
        database._gates = self._gates
        return database

    def pool_stats(self) -> list[PoolStats]:
        """The figures of each pool (none for a single connection)."""
        return [
            PoolStats(
                role,
                pool.get_size(),
                pool.get_idle_size(),
                pool.get_max_size(),
                self._waiting[role],
            )
            for role, pool in (("primary", self._primary), ("replica", self._replica))
            if isinstance(pool, asyncpg.Pool)
        ]

    @contextlib.asynccontextmanager
    async def _connection(self, *, write: bool) -> AsyncIterator[_Conn]:
        role = "primary" if write or self._replica is None else "replica"
        source = self._primary if role == "primary" else self._replica
        assert source is not None
        try:
            if isinstance(source, asyncpg.Connection):
                assert self._lock is not None
                async with self._lock:
                    yield source
            else:
                gate = self._gates[role]
                self._waiting[role] += 1
                try:
                    async with asyncio.timeout(self._acquire_timeout):
                        await gate.acquire()
                        try:
                            conn = await source.acquire()
                        except BaseException:
                            gate.release()
                            raise
                finally:
                    self._waiting[role] -= 1
                try:
                    yield conn
                except asyncpg.exceptions.InternalClientError:
                    # Its protocol state is broken (the server went away mid-statement):
                    # never lend it again.
                    conn.terminate()
                    raise
                finally:
                    try:
                        await _release(source, conn)
                    finally:
                        gate.release()
        except _UNAVAILABLE as exc:
            raise ServiceUnavailable("The database is unavailable; retry shortly.") from exc
        except asyncpg.exceptions.QueryCanceledError as exc:
            # statement_timeout (or an operator's cancel): the database is too busy for it now.
            raise ServiceUnavailable(
                "The database took too long to answer (statement timeout); retry shortly"
                " (with smaller batches, for writes)."
            ) from exc
        except asyncpg.exceptions.CharacterNotInRepertoireError as exc:
            # PostgreSQL text cannot hold NUL: a client's string with one is the client's error.
            raise BadInput("Text arguments must not contain NUL characters.") from exc

    async def _read(
        self, sql: str, run: Callable[[_Conn], Awaitable[_T]], *, generic_plan: bool = False
    ) -> _T:
        _note(sql)
        for attempt in (1, 2):
            try:
                async with self._connection(write=False) as conn:
                    await _plan_mode(conn, generic=generic_plan)
                    return await run(conn)
            except ServiceUnavailable as exc:
                # Once: a pool may hold several connections that died with the old server,
                # but asyncpg notices most of them when they close, before they are lent.
                if attempt == 2 or self._lock is not None or not isinstance(exc.__cause__, _LOST):
                    raise
        raise AssertionError("unreachable")

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        return await self._read(sql, lambda conn: conn.fetch(sql, *args))

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        return await self._read(sql, lambda conn: conn.fetchrow(sql, *args))

    async def fetchval(self, sql: str, *args: object) -> Any:
        return await self._read(sql, lambda conn: conn.fetchval(sql, *args))

    async def fetchval_planned(self, sql: str, *args: object) -> Any:
        """`fetchval` that may run on a cached generic plan (see `_plan_mode`)."""
        return await self._read(sql, lambda conn: conn.fetchval(sql, *args), generic_plan=True)

    async def fetchrow_planned(self, sql: str, *args: object) -> asyncpg.Record | None:
        """`fetchrow` that may run on a cached generic plan (see `_plan_mode`)."""
        return await self._read(sql, lambda conn: conn.fetchrow(sql, *args), generic_plan=True)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Writer]:
        """A transaction on the primary; statements run through the returned `Writer`."""
        async with self._connection(write=True) as conn:
            await _plan_mode(conn, generic=False)
            async with conn.transaction():
                if self._write_timeout_ms is None:
                    yield Writer(conn)
                    return
                await conn.execute(f"SET LOCAL statement_timeout = {int(self._write_timeout_ms)}")
                yield Writer(conn, timeout=self._write_timeout_ms / 1000 + 5)


if TYPE_CHECKING:
    _BaseConnection = asyncpg.Connection[Any]
else:
    _BaseConnection = asyncpg.Connection


class ServiceConnection(_BaseConnection):
    """A pool connection that remembers its `plan_cache_mode` (see `_plan_mode`)."""

    __slots__ = ("_generic_plans",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._generic_plans = False

    def uses_generic_plans(self) -> bool:
        return self._generic_plans

    def note_generic_plans(self, generic: bool) -> None:
        self._generic_plans = generic


async def _plan_mode(conn: _Conn, *, generic: bool) -> None:
    """Switch the connection's `plan_cache_mode` when the statement needs the other one.

    Sessions force custom plans (SESSION_SETTINGS: value-dependent plans of autocomplete and
    search). The compiled page statements plan the same way for any arguments, and planning
    them is most of their PostgreSQL time (~0.7 ms of ~1.3 ms for the article page), so
    they run with `auto`: a generic plan cached on the connection once it is no dearer than
    the custom ones. Switching costs one `SET` round trip, only when a connection goes from
    one kind of statement to the other (connections are released without a reset, so the
    mode stays). Single test connections are left as they are.
    """
    uses = getattr(conn, "uses_generic_plans", None)
    if uses is None or uses() == generic:
        return
    await conn.execute(GENERIC_PLANS if generic else CUSTOM_PLANS)
    conn.note_generic_plans(generic)  # type: ignore[union-attr]  # a ServiceConnection


async def _release(pool: asyncpg.Pool[Any], conn: PoolConnectionProxy[Any]) -> None:
    try:
        await pool.release(conn)
    except Exception as exc:
        # The connection could not be reset (it broke mid-statement, as when the server shuts
        # down); asyncpg has terminated it and will open a new one. The statement's own outcome
        # is what the caller must hear about, not this.
        log.warning("dropped a database connection that could not be reset: %r", exc)


class Writer:
    """Statements inside one write transaction (see `Database.transaction`)."""

    def __init__(
        self,
        conn: asyncpg.Connection[Any] | PoolConnectionProxy[Any],
        *,
        timeout: float | None = None,
    ) -> None:
        self.conn = conn
        self.timeout = timeout  # client-side, seconds (None: the connection's command timeout)

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        _note(sql)
        return await self.conn.fetch(sql, *args, timeout=self.timeout)

    async def fetchval(self, sql: str, *args: object) -> Any:
        _note(sql)
        return await self.conn.fetchval(sql, *args, timeout=self.timeout)

    async def execute(self, sql: str, *args: object) -> str:
        _note(sql)
        return await self.conn.execute(sql, *args, timeout=self.timeout)


GENERIC_PLANS: Final = "SET plan_cache_mode = auto"
CUSTOM_PLANS: Final = "SET plan_cache_mode = force_custom_plan"

# Session settings of every service connection (benches use them too, to plan alike).
SESSION_SETTINGS: Final = {
    # API statements are short: JIT compilation and parallel workers cost more than they
    # save (measured: JIT alone added 2-3 s to a common-term search at 1M rows).
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    # Bitmaps of common search terms stay exact instead of lossy (re-checked rows).
    "work_mem": "16MB",
    # Plans depend on the values (a rare word walks an index, a common one does not); a
    # generic plan chosen after five runs walked the whole popularity index for a rare
    # autocomplete word (900 ms at 1M entities). Planning our statements costs well under 1 ms.
    "plan_cache_mode": "force_custom_plan",
}


async def _create_pool(dsn: str, settings: Settings, role: str, lazy: bool) -> asyncpg.Pool[Any]:
    try:
        return await _pool(dsn, settings, role, settings.pool_min_size)
    except _UNAVAILABLE as exc:
        if not lazy:
            raise
        # asyncpg needs min_size connections to start a pool; without a database, start
        # with none and connect on demand (the pool then keeps no warm floor).
        log.warning("the %s database is unreachable (%s); starting without connections", role, exc)
        return await _pool(dsn, settings, role, 0)


async def _keep_session(conn: asyncpg.Connection[Any]) -> None:
    """Release without asyncpg's reset query (`RESET ALL`, `UNLISTEN *`, …).

    Our statements change no session state (no LISTEN, advisory locks or cursors on pool
    connections, and the one SET, `_plan_mode`, is tracked by the connection itself; an open
    transaction is still rolled back by asyncpg before this is called),
    so the reset was a round trip per statement for nothing (measured: one extra
    transaction per statement in pg_stat_database).
    """


async def _pool(dsn: str, settings: Settings, role: str, min_size: int) -> asyncpg.Pool[Any]:
    return await asyncpg.create_pool(
        dsn,
        min_size=min_size,
        max_size=settings.pool_max_size,
        init=_init_connection,
        reset=_keep_session,
        connection_class=ServiceConnection,
        timeout=settings.pool_acquire_timeout,
        command_timeout=settings.statement_timeout_ms / 1000 + 5,
        max_inactive_connection_lifetime=300,
        # 0 behind PgBouncer in transaction mode, where prepared statements do not survive.
        statement_cache_size=settings.statement_cache_size,
        server_settings={
            "application_name": f"newsgraph-{role}",
            "statement_timeout": str(settings.statement_timeout_ms),
            **SESSION_SETTINGS,
        },
    )


@contextlib.asynccontextmanager
async def open_database(settings: Settings, *, lazy: bool = False) -> AsyncIterator[Database]:
    """Open the pools for `settings.database_url` (and the replica), close them on exit.

    A database that cannot be reached fails here, unless `lazy`: then the pools start empty
    and connect when asked (statements fail with `ServiceUnavailable` until it is back).
    """
    if not settings.database_url:
        raise ValueError("open_database needs settings.database_url")
    primary = await _create_pool(settings.database_url, settings, "primary", lazy)
    replica = None
    try:
        if settings.database_replica_url:
            replica = await _create_pool(settings.database_replica_url, settings, "replica", lazy)
        yield Database(
            primary,
            replica,
            acquire_timeout=settings.pool_acquire_timeout,
            write_timeout_ms=settings.write_timeout_ms,
        )
    finally:
        for pool in (replica, primary):
            if pool is not None:
                try:
                    await asyncio.wait_for(pool.close(), timeout=10)
                except TimeoutError:
                    pool.terminate()
