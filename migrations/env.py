"""Alembic environment: async engine over asyncpg, plain SQL revisions, no ORM metadata.

The URL comes from `config.attributes["dsn"]` (set by `service.db.migrate`), else from
`DATABASE_URL` through `Settings`, so `alembic upgrade head` works from a checkout too.
Concurrent upgrades (several pods starting at once) serialise on an advisory lock.
"""

from __future__ import annotations

import asyncio

import asyncpg
from alembic import context
from sqlalchemy import pool, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from service.config import Settings

# Any fixed 64-bit number works; it only has to be the same for every migrator.
MIGRATION_LOCK_KEY = 7_412_639_045_118_202_311


def _dsn() -> str:
    dsn = context.config.attributes.get("dsn") or Settings.from_environ().database_url
    if not dsn:
        raise SystemExit(
            "Set DATABASE_URL (or run `newsgraph migrate`, which can start the embedded database)."
        )
    return str(dsn)


def _async_url(dsn: str) -> str:
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix) :]
    return dsn


def _run(connection: Connection) -> None:
    connection.execute(text("SET lock_timeout = '10s'"))
    connection.execute(text(f"SELECT pg_advisory_lock({MIGRATION_LOCK_KEY})"))
    connection.commit()
    try:
        context.configure(
            connection=connection, target_metadata=None, transaction_per_migration=True
        )
        with context.begin_transaction():
            context.run_migrations()
    finally:
        connection.execute(text(f"SELECT pg_advisory_unlock({MIGRATION_LOCK_KEY})"))
        connection.commit()


async def _run_async() -> None:
    dsn = _dsn()
    # asyncpg reads the URL itself (as the service's pools do), so libpq-style parameters
    # such as ?sslmode=require work here too; SQLAlchemy's URL parsing would pass them on
    # as unknown keywords.
    engine = create_async_engine(
        "postgresql+asyncpg://",
        async_creator=lambda: asyncpg.connect(dsn),
        poolclass=pool.NullPool,
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


if context.is_offline_mode():
    context.configure(url=_async_url(_dsn()), target_metadata=None, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
else:
    asyncio.run(_run_async())
