from __future__ import annotations

import asyncio
import os

import asyncpg

from service.db.migrate import downgrade, head_revision, upgrade
from service.db.pool import Database
from service.db.search import LANGUAGE_CONFIGS, ts_config
from tests.support import create_database, drop_database

TABLES = {"sources", "articles", "entities", "entity_aliases", "article_entities"}


async def _tables(url: str) -> set[str]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        return {r["tablename"] for r in rows}
    finally:
        await conn.close()


async def test_upgrade_downgrade_upgrade_on_an_empty_database(server_url: str) -> None:
    name = f"newsgraph_migrations_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        await asyncio.to_thread(upgrade, url)
        assert await _tables(url) >= TABLES
        await asyncio.to_thread(downgrade, url, "base")
        assert not TABLES & await _tables(url)
        await asyncio.to_thread(upgrade, url)
        assert await _tables(url) >= TABLES
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
        finally:
            await conn.close()
    finally:
        await drop_database(server_url, name)


async def test_search_configurations_match_the_database_function(db: Database) -> None:
    codes = [*LANGUAGE_CONFIGS, "und", "EN-gb", "xx"]
    rows = await db.fetch(
        "SELECT code, newsgraph_ts_config(code)::text AS config FROM unnest($1::text[]) code", codes
    )
    assert {r["code"]: r["config"] for r in rows} == {code: ts_config(code) for code in codes}


async def test_posting_tables_are_vacuumed_after_a_bounded_number_of_new_rows(db: Database) -> None:
    # Migration 0015: index-only scans of recent postings stay index-only (see its docstring).
    rows = await db.fetch(
        "SELECT relname, reloptions FROM pg_class WHERE relname = ANY($1::text[])",
        ["article_terms", "article_bands", "article_entities"],
    )
    assert len(rows) == 3
    for row in rows:
        assert set(row["reloptions"]) >= {
            "autovacuum_vacuum_insert_scale_factor=0",
            "autovacuum_vacuum_insert_threshold=50000",
        }, row
