"""SIGTERM drains what is in flight: a real `newsgraph serve` process, requests still arriving.

An NDJSON upload that is still sending and a GraphQL request whose body is only half sent
when the signal comes both get complete answers (the upload's acknowledged lines are
stored); new connections are refused from then on; the process exits 0 well within uvicorn's
graceful-shutdown period (20 s in `newsgraph serve`), its indexer process stopped first.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from tests.factories import article_input
from tests.support import create_database, drop_database, free_port

LINES = 20
LINE_GAP = 0.15  # so the upload takes about 3 s
GRACE = 20.0


@pytest.fixture
def scratch_url(server_url: str) -> Iterator[str]:
    name = f"newsgraph_shutdown_{os.getpid()}"
    url = asyncio.run(create_database(server_url, name))
    try:
        yield url
    finally:
        asyncio.run(drop_database(server_url, name))


def _slow_upload(base: str, run: str, answers: list[httpx.Response]) -> None:
    def body() -> Iterator[bytes]:
        for n in range(LINES):
            time.sleep(LINE_GAP)
            yield orjson.dumps(article_input(url=f"https://shutdown.example/{run}/{n}")) + b"\n"

    with httpx.Client(timeout=60) as http:
        answers.append(
            http.post(
                f"{base}/v1/ingest",
                content=body(),
                headers={"content-type": "application/x-ndjson"},
            )
        )


def _half_sent_graphql(port: int, started: threading.Event, answers: list[bytes]) -> None:
    body = orjson.dumps({"query": "{ articles(first: 1) { totalCount } }"})
    head = (
        f"POST /graphql HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head + body[:10])
        started.set()
        time.sleep(2.0)  # the signal arrives meanwhile
        sock.sendall(body[10:])
        # The answer says `connection: close`, so it ends where the connection does.
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
        answers.append(b"".join(chunks))


def _command_line(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()


def _refused(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return False
    except OSError:
        return True


async def _stored(url: str, run: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        count = await conn.fetchval(
            "SELECT count(*) FROM articles WHERE canonical_url LIKE $1",
            f"https://shutdown.example/{run}/%",
        )
        return int(count)
    finally:
        await conn.close()


def test_sigterm_drains_in_flight_requests_then_exits_0(scratch_url: str, tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--migrate"],
            env={**os.environ, "DATABASE_URL": scratch_url},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    run = uuid.uuid4().hex[:10]
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, log_path.read_text()[-3000:]
            time.sleep(0.2)

        # The related-stories indexer runs in a child process of its own (the default).
        children = [
            pid
            for task in Path(f"/proc/{process.pid}/task").iterdir()
            for pid in (task / "children").read_text().split()
        ]
        (indexer,) = [int(pid) for pid in children if "index" in _command_line(int(pid))]

        uploads: list[httpx.Response] = []
        queries: list[bytes] = []
        query_started = threading.Event()
        threads = [
            threading.Thread(target=_slow_upload, args=(base, run, uploads)),
            threading.Thread(target=_half_sent_graphql, args=(port, query_started, queries)),
        ]
        for thread in threads:
            thread.start()
        assert query_started.wait(10)
        time.sleep(0.8)  # a few upload lines are in
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()

        refused_after = None
        while time.monotonic() - signalled < 5:
            if _refused(port):
                refused_after = time.monotonic() - signalled
                break
            time.sleep(0.05)
        assert refused_after is not None, "new connections were still accepted 5 s after SIGTERM"
        for thread in threads:
            thread.join(timeout=GRACE + 10)
        process.wait(timeout=GRACE + 10)
        exited_after = time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    log = log_path.read_text(errors="replace")
    assert process.returncode == 0, log[-3000:]
    assert exited_after < GRACE, exited_after
    assert not Path(f"/proc/{indexer}").exists(), "the indexer process outlived the server"

    (upload,) = uploads
    assert upload.status_code == 200, upload.text
    results = [orjson.loads(line) for line in upload.content.splitlines()]
    assert [r["status"] for r in results] == ["CREATED"] * LINES, results
    assert asyncio.run(_stored(scratch_url, run)) == LINES

    (query,) = queries
    head, _, body = query.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), query
    assert b"connection: close" in head.lower()
    assert isinstance(orjson.loads(body)["data"]["articles"]["totalCount"], int)
    print(
        f"\nrefused new connections {refused_after:.2f} s after SIGTERM;"
        f" exited 0 after {exited_after:.2f} s with both in-flight requests answered"
    )
