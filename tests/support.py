"""Test helpers: scratch databases, free ports, an HTTP client over the app."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import asyncpg
import httpx

from service.app import create_app
from service.config import Settings
from service.db.pool import Database


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


async def create_database(server_url: str, name: str) -> str:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(server_url, name)


async def drop_database(server_url: str, name: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def with_state(app: Any, state: Any) -> Any:
    """ASGITransport does not run the lifespan: give each request the lifespan's state."""

    async def asgi(scope: Any, receive: Any, send: Any) -> None:
        scope["state"] = dict(state)
        await app(scope, receive, send)

    return asgi


@contextlib.asynccontextmanager
async def app_client(settings: Settings, db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the app built with `settings` over `db`, its lifespan running."""
    app = create_app(settings, database=db)
    async with (
        app.router.lifespan_context(app) as state,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=with_state(app, state)),
            base_url="http://newsgraph.test",
        ) as http,
    ):
        yield http
