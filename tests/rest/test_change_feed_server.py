"""A mirror that follows the change feed ends with exactly the server's state.

A real `newsgraph serve` on loopback, over a database of its own. Two pollers (REST
`/v1/changes` and GraphQL `changes`) follow the feed while writers, concurrently, ingest new
articles (published long ago: "late"), update earlier ones out of order, take some down and
try to ingest a removed URL again. When the writers are done and the pollers have caught up,
each mirror holds exactly the server's live articles (same titles) and knows every removal.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest_asyncio

from tests.factories import article_input
from tests.feed_support import scratch_database
from tests.support import free_port

ARTICLES = 60
Fetch = Callable[
    [httpx.AsyncClient, str | None], Awaitable[tuple[list[dict[str, Any]], str | None]]
]

CHANGES = """
query($after: String) {
  changes(first: 7, after: $after) {
    edges { node { seq kind article { id title } tombstone { id } } }
    pageInfo { endCursor }
  }
}"""


@pytest_asyncio.fixture
async def server(server_url: str, tmp_path: Path) -> AsyncIterator[str]:
    async with scratch_database(server_url, "feed_server") as url:
        port = free_port()
        log = tmp_path / "serve.log"
        env = {**os.environ, "DATABASE_URL": url, "NEWSGRAPH_DATA_DIR": str(tmp_path / "unused")}
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "service.cli", "serve", "--port", str(port),
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            async with httpx.AsyncClient(base_url=base, timeout=2) as http, asyncio.timeout(60):
                while True:
                    assert process.returncode is None, log.read_text()
                    with contextlib.suppress(httpx.TransportError):
                        if (await http.get("/readyz")).status_code == 200:
                            break
                    await asyncio.sleep(0.2)
            yield base
        finally:
            if process.returncode is None:
                process.kill()
            await asyncio.wait_for(process.wait(), 30)


async def _rest_page(
    http: httpx.AsyncClient, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    params = {"limit": "5", **({"cursor": cursor} if cursor else {})}
    response = await http.get("/v1/changes", params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    return [edge["node"] for edge in page["edges"]], page["pageInfo"]["endCursor"]


async def _graphql_page(
    http: httpx.AsyncClient, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    response = await http.post("/graphql", json={"query": CHANGES, "variables": {"after": cursor}})
    body = response.json()
    assert "errors" not in body, body
    page = body["data"]["changes"]
    return [edge["node"] for edge in page["edges"]], page["pageInfo"]["endCursor"]


class Mirror:
    def __init__(self) -> None:
        self.articles: dict[str, str] = {}
        self.removed: set[str] = set()
        self.cursor: str | None = None
        self.last_seq = 0

    async def poll_once(self, http: httpx.AsyncClient, fetch: Fetch) -> int:
        nodes, self.cursor = await fetch(http, self.cursor)
        for node in nodes:
            assert node["seq"] > self.last_seq  # strictly in sequence, never repeated
            self.last_seq = node["seq"]
            if node["kind"] == "REMOVED":
                self.articles.pop(node["tombstone"]["id"], None)
                self.removed.add(node["tombstone"]["id"])
            else:
                self.articles[node["article"]["id"]] = node["article"]["title"]
        return len(nodes)

    async def follow(self, http: httpx.AsyncClient, fetch: Fetch, done: asyncio.Event) -> None:
        while not done.is_set():
            if not await self.poll_once(http, fetch):
                await asyncio.sleep(0.05)
        while await self.poll_once(http, fetch):  # catch up
            pass


async def _ingest(http: httpx.AsyncClient, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    body = b"".join(orjson.dumps(item) + b"\n" for item in items)
    response = await http.post(
        "/v1/ingest", content=body, headers={"content-type": "application/x-ndjson"}
    )
    assert response.status_code == 200, response.text
    return [orjson.loads(line) for line in response.content.splitlines()]


async def _graphql(http: httpx.AsyncClient, query: str, **variables: Any) -> dict[str, Any]:
    response = await http.post("/graphql", json={"query": query, "variables": variables})
    body = response.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def _writers(http: httpx.AsyncClient) -> set[str]:
    rng = random.Random(8)
    items = [
        article_input(
            url=f"https://mirror.example/{n}",
            title=f"Story {n}",
            publishedAt=f"20{rng.randint(10, 25)}-0{rng.randint(1, 9)}-1{rng.randint(0, 9)}",
        )
        for n in range(ARTICLES)
    ]
    ids: dict[str, str] = {}

    async def ingest_some(chunk: list[dict[str, Any]]) -> None:
        for start in range(0, len(chunk), 4):
            for item, result in zip(
                chunk[start : start + 4], await _ingest(http, chunk[start : start + 4]), strict=True
            ):
                assert result["status"] == "CREATED", result
                ids[item["url"]] = result["id"]
            await asyncio.sleep(0.01)

    await asyncio.gather(ingest_some(items[::2]), ingest_some(items[1::2]))
    # Updates, oldest articles first (out of the order they were made in), some twice.
    updates = [
        {**item, "title": f"{item['title']} (updated)"} for item in rng.sample(items[:30], 20)
    ] + [{**item, "title": f"{item['title']} (again)"} for item in items[:5]]
    update = "mutation($a: [ArticleInput!]!) { ingestArticles(articles: $a) { status } }"
    removed: set[str] = set()
    delete = (
        "mutation($urls: [String!]) "
        '{ deleteArticles(urls: $urls, reason: "legal") { status tombstone { id } } }'
    )
    for n, item in enumerate(updates):
        result = await _graphql(http, update, a=[item])
        assert result["ingestArticles"][0]["status"] == "UPDATED"
        if n % 4 == 0:
            victim = items[ARTICLES - 1 - n]
            [outcome] = (await _graphql(http, delete, urls=[victim["url"]]))["deleteArticles"]
            assert outcome["status"] == "REMOVED"
            removed.add(outcome["tombstone"]["id"])
    refused = await _ingest(http, [items[ARTICLES - 1]])
    assert refused[0]["status"] == "REJECTED"
    assert refused[0]["errors"][0]["code"] == "REMOVED"
    return removed


async def _server_state(http: httpx.AsyncClient) -> dict[str, str]:
    state: dict[str, str] = {}
    cursor = None
    while True:
        params = {"limit": "100", "order": "oldest", **({"cursor": cursor} if cursor else {})}
        page = (await http.get("/v1/articles", params=params)).json()
        state.update({e["node"]["id"]: e["node"]["title"] for e in page["edges"]})
        if not page["pageInfo"]["hasNextPage"]:
            return state
        cursor = page["pageInfo"]["endCursor"]


async def test_pollers_mirror_the_server_exactly(server: str) -> None:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http, asyncio.timeout(180):
        rest, graphql = Mirror(), Mirror()
        done = asyncio.Event()
        pollers = [
            asyncio.create_task(rest.follow(http, _rest_page, done)),
            asyncio.create_task(graphql.follow(http, _graphql_page, done)),
        ]
        try:
            removed = await _writers(http)
        finally:
            done.set()
            await asyncio.gather(*pollers)
        state = await _server_state(http)
        assert len(state) == ARTICLES - len(removed)
        assert any(title.endswith("(again)") for title in state.values())
        for mirror in (rest, graphql):
            assert mirror.articles == state
            assert mirror.removed == removed
        # A cursor from long ago still works: a new mirror replays everything to the same state.
        late = Mirror()
        while await late.poll_once(http, _rest_page):
            pass
        assert late.articles == state
