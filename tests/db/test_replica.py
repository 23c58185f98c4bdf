"""Reads through DATABASE_REPLICA_URL, writes through DATABASE_URL, with a real second URL.

The "replica" is the same database reached as a read-only role
(`default_transaction_read_only`, SELECT only), so a write through it fails as on a standby.
Row-level security hides from that role the articles written after setup: a replica that has
not caught up. Reads that show those articles therefore came from the primary, and reads
that miss them came from the replica. The database is this module's own: the tests commit.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
import pytest_asyncio

from service.config import Settings
from service.db.migrate import upgrade
from service.db.pool import Database, open_database
from service.ingest.catalogue import LinkerCache
from tests.conftest import GraphQLRunner
from tests.factories import article_input
from tests.support import app_client, create_database, drop_database

INGEST = """
mutation($articles: [ArticleInput!]!) {
  ingestArticles(articles: $articles) { status errors { code message } article { id title } }
}"""
ARTICLE = "query($id: ID!) { article(id: $id) { id title } }"
FEED = "{ articles(first: 10) { edges { node { id title } } } }"


@dataclass(frozen=True, slots=True)
class Replica:
    primary_url: str
    replica_url: str
    role: str
    seeded_title: str

    def settings(self, *, replica: bool = True) -> Settings:
        env = {"DATABASE_URL": self.primary_url, "NEWSGRAPH_POOL_MIN_SIZE": "1"}
        if replica:
            env["DATABASE_REPLICA_URL"] = self.replica_url
        return Settings.from_environ(env)


def _as_role(url: str, role: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}@{host}"))


async def _ingest(gql: GraphQLRunner, *items: dict[str, Any]) -> list[dict[str, Any]]:
    data = await gql.data(INGEST, articles=list(items))
    results: list[dict[str, Any]] = data["ingestArticles"]
    return results


@pytest_asyncio.fixture(scope="module")
async def replica(server_url: str) -> AsyncIterator[Replica]:
    name = f"newsgraph_replica_{os.getpid()}"
    role = f"newsgraph_reader_{os.getpid()}"
    url = await create_database(server_url, name)
    admin = await asyncpg.connect(server_url)
    try:
        await asyncio.to_thread(upgrade, url)
        seeded = Replica(url, _as_role(url, role), role, "Seeded before the replica lagged")
        async with open_database(seeded.settings(replica=False)) as db:
            [created] = await _ingest(
                GraphQLRunner(seeded.settings(replica=False), db),
                article_input(title=seeded.seeded_title),
            )
            assert created["status"] == "CREATED", created
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.execute(f'CREATE ROLE "{role}" LOGIN')
        await admin.execute(f'ALTER ROLE "{role}" SET default_transaction_read_only = on')
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f'GRANT USAGE ON SCHEMA public TO "{role}"')
            await conn.execute(f'GRANT SELECT ON ALL TABLES IN SCHEMA public TO "{role}"')
            # The replica "has not caught up": it sees no article newer than the seeded one.
            # The primary's role owns the tables (or is a superuser), so it sees every row.
            last = await conn.fetchval("SELECT max(id) FROM articles")
            await conn.execute("ALTER TABLE articles ENABLE ROW LEVEL SECURITY")
            await conn.execute(
                f'CREATE POLICY replica_lag ON articles FOR SELECT TO "{role}" '
                f"USING (id <= {int(last)})"
            )
        finally:
            await conn.close()
        yield seeded
    finally:
        await drop_database(server_url, name)
        await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
        await admin.close()


@pytest_asyncio.fixture
async def db(replica: Replica) -> AsyncIterator[Database]:
    """The app's pools: primary and replica, as `DATABASE_REPLICA_URL` configures them."""
    async with open_database(replica.settings()) as database:
        yield database


@pytest_asyncio.fixture
async def gql(replica: Replica, db: Database) -> AsyncIterator[GraphQLRunner]:
    catalogue = LinkerCache()
    yield GraphQLRunner(replica.settings(), db, catalogue)
    await catalogue.close()


async def test_reads_go_to_the_replica(replica: Replica, db: Database, gql: GraphQLRunner) -> None:
    assert await db.fetchval("SELECT current_user") == replica.role
    assert await db.fetchval("SHOW transaction_read_only") == "on"
    feed = await gql.data(FEED)
    titles = [edge["node"]["title"] for edge in feed["articles"]["edges"]]
    assert replica.seeded_title in titles


async def test_readiness_reads_through_the_replica(replica: Replica, db: Database) -> None:
    async with app_client(replica.settings(), db) as http:
        response = await http.get("/readyz")
    assert response.status_code == 200, response.text


async def test_a_write_through_the_replica_pool_fails(replica: Replica) -> None:
    # A Database whose "primary" is the replica URL: the app's pool factory, its transaction.
    settings = Settings.from_environ({"DATABASE_URL": replica.replica_url})
    async with open_database(settings) as db:
        with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
            async with db.transaction() as writer:
                await writer.execute("DELETE FROM articles WHERE false")


async def test_ingest_writes_to_the_primary_and_reads_its_own_writes(
    replica: Replica, db: Database, gql: GraphQLRunner
) -> None:
    item = article_input(title="Written while the replica lags")
    [created] = await _ingest(gql, item)
    assert created["status"] == "CREATED", created
    # The mutation's result comes from the primary: the replica cannot see the row yet.
    assert created["article"]["title"] == "Written while the replica lags"
    article_id = created["article"]["id"]
    assert (await gql.data(ARTICLE, id=article_id))["article"] is None  # a plain read: replica
    async with open_database(replica.settings(replica=False)) as primary:
        on_primary = await GraphQLRunner(replica.settings(replica=False), primary).data(
            ARTICLE, id=article_id
        )
    assert on_primary["article"]["title"] == "Written while the replica lags"
    # Deduplication looks at the primary too: the same item again is not a second article.
    [again] = await _ingest(gql, item)
    assert (again["status"], again["article"]["id"]) == ("UNCHANGED", article_id)
    [edited] = await _ingest(gql, dict(item, title="Edited while the replica lags"))
    assert (edited["status"], edited["article"]) == (
        "UPDATED",
        {"id": article_id, "title": "Edited while the replica lags"},
    )


async def test_ndjson_ingest_writes_with_a_replica_configured(
    replica: Replica, db: Database
) -> None:
    line = orjson.dumps(article_input(title="Streamed while the replica lags"))
    async with app_client(replica.settings(), db) as http:
        response = await http.post(
            "/v1/ingest", content=line + b"\n", headers={"content-type": "application/x-ndjson"}
        )
    assert response.status_code == 200, response.text
    [result] = [orjson.loads(text) for text in response.content.splitlines()]
    assert result["status"] == "CREATED", result
