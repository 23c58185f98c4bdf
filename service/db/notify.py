"""Change notifications: one dedicated connection per process LISTENs for writes.

Migration 0006 makes every writing statement on the tables that pages read send
`NOTIFY newsgraph_changes`. A listener must hold its own connection (asyncpg drops the
listeners of a pooled connection when it goes back to the pool). When that connection is
lost, `on_listening(False)` says changes may be missed until `on_listening(True)`; the
listener reconnects every second meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any, Final

import asyncpg

__all__ = ["CHANNEL", "listen_for_changes"]

CHANNEL: Final = "newsgraph_changes"
RETRY_SECONDS: Final = 1.0

log = logging.getLogger("newsgraph.db")


@contextlib.asynccontextmanager
async def listen_for_changes(
    dsn: str, on_change: Callable[[str], None], on_listening: Callable[[bool], None]
) -> AsyncIterator[None]:
    """Call `on_change(table)` after each committed write, while this context is open."""
    task = asyncio.create_task(
        _listen(dsn, on_change, on_listening), name="newsgraph-change-listener"
    )
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def _listen(
    dsn: str, on_change: Callable[[str], None], on_listening: Callable[[bool], None]
) -> None:
    while True:
        conn: asyncpg.Connection[Any] | None = None
        try:
            conn = await asyncpg.connect(
                dsn, server_settings={"application_name": "newsgraph-listen"}
            )
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, lost=lost: lost.set())
            await conn.add_listener(
                CHANNEL, lambda _conn, _pid, _channel, table: on_change(str(table))
            )
            on_listening(True)
            await lost.wait()
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            log.warning("change listener: %r; retrying in %.0f s", exc, RETRY_SECONDS)
        finally:
            on_listening(False)
            if conn is not None and not conn.is_closed():
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(conn.close(), timeout=2)
        await asyncio.sleep(RETRY_SECONDS)
