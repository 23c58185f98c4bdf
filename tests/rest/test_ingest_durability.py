"""Acknowledged ingest survives a crash, and sending everything again duplicates nothing.

A real `newsgraph serve` on loopback, over a database of its own, gets a slow NDJSON upload
from a client that reads the answer while it sends: httpx sends the whole body before it
reads, so this client speaks HTTP/1.1 through h11 (a uvicorn dependency). The server is
SIGKILLed once some results arrived; every result received must be in the database. Then a
new server gets the whole file again (through httpx: the answer is small enough to wait for
a client that reads only after sending), and there must be exactly one article per line.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import h11
import httpx
import orjson
import pytest_asyncio

from service.db.migrate import upgrade
from service.ids import decode_id
from tests.support import create_database, drop_database, free_port

ARTICLES = 3000
DOMAIN = "durable.example"


def article_line(n: int) -> bytes:
    return orjson.dumps(
        {
            "url": f"https://{DOMAIN}/story/{n}",
            "title": f"Durable story {n}",
            "summary": "A line that must be stored exactly once.",
            "publishedAt": "2002-03-04T05:06:07Z",
            "language": "en",
            "source": {"domain": DOMAIN, "name": "Durable Test Wire"},
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


@pytest_asyncio.fixture
async def durable_url(server_url: str) -> AsyncIterator[str]:
    name = f"newsgraph_durable_{os.getpid()}"
    url = await create_database(server_url, name)
    await asyncio.to_thread(upgrade, url)
    try:
        yield url
    finally:
        await drop_database(server_url, name)


class Servers:
    """`newsgraph serve` processes on loopback, killed at the end whatever happens."""

    def __init__(self, database_url: str, log_dir: Path) -> None:
        self.database_url = database_url
        self.log_dir = log_dir
        self.started: list[asyncio.subprocess.Process] = []

    async def start(self) -> tuple[asyncio.subprocess.Process, str]:
        port = free_port()
        env = dict(os.environ)
        env.update(
            DATABASE_URL=self.database_url,
            NEWSGRAPH_INGEST_BATCH_SIZE="100",
            NEWSGRAPH_DATA_DIR=str(self.log_dir / "unused"),
        )
        log = self.log_dir / f"serve-{len(self.started)}.log"
        with log.open("wb") as out:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "service.cli", "serve", "--port", str(port),
                env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        self.started.append(process)
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=2) as http, asyncio.timeout(60):
            while True:
                assert process.returncode is None, log.read_text()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        return process, base
                await asyncio.sleep(0.2)

    async def stop_all(self) -> None:
        for process in self.started:
            if process.returncode is None:
                process.kill()
            await asyncio.wait_for(process.wait(), 30)

    def logs(self) -> str:
        return "\n".join(p.read_text() for p in sorted(self.log_dir.glob("serve-*.log")))


@contextlib.asynccontextmanager
async def servers(database_url: str, log_dir: Path) -> AsyncIterator[Servers]:
    running = Servers(database_url, log_dir)
    try:
        yield running
    finally:
        await running.stop_all()


class DuplexPost:
    """One HTTP/1.1 POST with a chunked body, whose answer can be read while sending."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(our_role=h11.CLIENT)

    @classmethod
    async def open(cls, base: str, path: str) -> DuplexPost:
        host, _, port = base.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        post = cls(reader, writer)
        post.writer.write(
            post.conn.send(
                h11.Request(
                    method="POST",
                    target=path,
                    headers=[
                        ("Host", f"{host}:{port}"),
                        ("Content-Type", "application/x-ndjson"),
                        ("Transfer-Encoding", "chunked"),
                    ],
                )
            )
            or b""
        )
        await post.writer.drain()
        return post

    async def send(self, data: bytes) -> None:
        self.writer.write(self.conn.send(h11.Data(data=data)) or b"")
        await self.writer.drain()

    async def end(self) -> None:
        self.writer.write(self.conn.send(h11.EndOfMessage()) or b"")
        await self.writer.drain()

    async def lines(self) -> AsyncIterator[bytes]:
        """The answer's lines as they arrive, until it ends or the connection breaks."""
        pending = b""
        while True:
            try:
                event = self.conn.next_event()
            except h11.RemoteProtocolError:  # cut off in the middle
                return
            if event is h11.NEED_DATA:
                try:
                    self.conn.receive_data(await self.reader.read(65536))
                except ConnectionError:
                    return
            elif isinstance(event, h11.Response):
                assert event.status_code == 200, event
            elif isinstance(event, h11.Data):
                *complete, pending = (pending + bytes(event.data)).split(b"\n")
                for text in complete:
                    yield text
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return

    def close(self) -> None:
        self.writer.close()


async def test_acknowledged_lines_survive_a_crash_and_a_resend_stores_each_once(
    durable_url: str, tmp_path: Path
) -> None:
    lines = [article_line(n) for n in range(ARTICLES)]
    acknowledged: dict[int, dict[str, Any]] = {}
    async with servers(durable_url, tmp_path) as running:
        async with asyncio.timeout(240):
            first, base = await running.start()
            post = await DuplexPost.open(base, "/v1/ingest")
            sent_all = asyncio.Event()
            killed = asyncio.Event()

            async def send_slowly() -> None:
                with contextlib.suppress(ConnectionError):
                    for start in range(0, ARTICLES, 20):  # about 1,000 lines a second
                        if start == ARTICLES // 2:
                            # However slow storing is (a loaded machine), the crash comes
                            # mid-upload: the second half waits for it.
                            await killed.wait()
                        await post.send(b"".join(lines[start : start + 20]))
                        await asyncio.sleep(0.02)
                    await post.end()
                    sent_all.set()

            sender = asyncio.create_task(send_slowly())
            try:
                async for text in post.lines():
                    result = orjson.loads(text)
                    assert "error" not in result, result
                    acknowledged[result["line"]] = result
                    if len(acknowledged) >= 500 and first.returncode is None:
                        assert not sent_all.is_set(), "the upload ended before the crash"
                        first.send_signal(signal.SIGKILL)
                        killed.set()
                await sender
            finally:
                sender.cancel()
                post.close()
            assert await asyncio.wait_for(first.wait(), 30) == -signal.SIGKILL
            assert 500 <= len(acknowledged) < ARTICLES, running.logs()
            assert sorted(acknowledged) == list(range(1, len(acknowledged) + 1))
            assert {r["status"] for r in acknowledged.values()} == {"CREATED"}

            conn = await asyncpg.connect(durable_url)
            try:
                rows = await conn.fetch(
                    "SELECT id, canonical_url FROM articles WHERE id = ANY($1::bigint[])",
                    [decode_id(r["id"])[1] for r in acknowledged.values()],
                )
                stored = {row["id"]: row["canonical_url"] for row in rows}
                for number, result in acknowledged.items():
                    article_id = decode_id(result["id"])[1]
                    assert stored.get(article_id) == f"https://{DOMAIN}/story/{number - 1}"

                _, base = await running.start()
                async with httpx.AsyncClient(base_url=base, timeout=120) as http:
                    response = await http.post(
                        "/v1/ingest",
                        content=b"".join(lines),
                        headers={"content-type": "application/x-ndjson"},
                    )
                assert response.status_code == 200, running.logs()
                again = [orjson.loads(text) for text in response.content.splitlines()]
                assert [r["line"] for r in again] == list(range(1, ARTICLES + 1))
                for number, result in acknowledged.items():
                    assert again[number - 1]["status"] == "UNCHANGED"
                    assert again[number - 1]["id"] == result["id"]
                assert {r["status"] for r in again} <= {"CREATED", "UNCHANGED"}
                assert len({r["id"] for r in again}) == ARTICLES
                counts = await conn.fetchrow(
                    "SELECT count(*) AS articles, count(DISTINCT canonical_url) AS urls"
                    " FROM articles WHERE canonical_url LIKE $1",
                    f"https://{DOMAIN}/%",
                )
                assert counts is not None
                assert (counts["articles"], counts["urls"]) == (ARTICLES, ARTICLES)
            finally:
                await conn.close()
