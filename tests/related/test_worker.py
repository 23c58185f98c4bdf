"""The indexer process (`newsgraph index`, service.related.worker): real processes, a real
database of their own. It indexes what ingest queued and stores the lists with three
connections at most whatever the pool settings, serves its metrics, stops on SIGTERM, stops
by itself when the server that started it is killed, and a server starts another when it
dies."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio

from service.config import Settings
from service.db import related_lists
from service.db.pool import Database
from service.ingest.pipeline import ingest_batch
from service.metrics import Metrics
from service.related import lists
from service.related.worker import IndexerProcess, observe_queue
from tests.factories import article_input
from tests.feed_support import scratch_pool
from tests.support import free_port

LEAD = (
    "Storm Ingunn closed schools and ferry routes along the coast of central Norway on "
    "Wednesday, as gusts above 40 metres per second tore roofs off houses in Trondelag."
)


@pytest_asyncio.fixture(scope="module")
async def worker(server_url: str, settings: Settings) -> AsyncIterator[tuple[str, Database]]:
    """A scratch database of this module's own: (its URL, a pool on it)."""
    async with scratch_pool(server_url, "indexer_process", settings) as scratch:
        yield scratch


def _env(url: str, **extra: str) -> dict[str, str]:
    return {**os.environ, "DATABASE_URL": url, "NEWSGRAPH_LOG_FORMAT": "text", **extra}


def _alive(pid: int) -> bool:
    """Running (not gone, not a zombie nobody reaped)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _until(check: Callable[[], bool], within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, f"not so within {within} s"
        time.sleep(0.1)


async def _ingest(db: Database, run: str, n: int) -> list[int]:
    items = [
        article_input(
            url=f"https://storm.example/{run}/{i}",
            title=f"Storm closes schools in central Norway ({run} {i})",
            body=LEAD,
            source={"domain": f"coast{i}.example", "name": f"Coast paper {i}"},
        )
        for i in range(n)
    ]
    results = await ingest_batch(db, items)
    ids = [r.article_id for r in results if r.article_id is not None]
    assert len(ids) == n, results
    return ids


async def _indexed_and_listed(db: Database, ids: list[int]) -> bool:
    indexed = await db.fetchval(
        "SELECT count(*) FROM article_signals WHERE article_id = ANY($1::bigint[])", ids
    )
    valid = await related_lists.fetch_valid_lists(db, ids, lists.LIST_SIZE)
    return bool(indexed == len(ids) and len(valid.lists) == len(ids))


async def _eventually(check: Callable[[], Any], within: float) -> None:
    deadline = time.monotonic() + within
    while not await check():
        assert time.monotonic() < deadline, f"not so within {within} s"
        await asyncio.sleep(0.1)


async def test_the_indexer_process_indexes_lists_reports_and_stops_on_sigterm(
    worker: tuple[str, Database], tmp_path: Path
) -> None:
    worker_url, wdb = worker
    ids = await _ingest(wdb, "sigterm", 3)  # queued; nothing in this process indexes
    assert not await _indexed_and_listed(wdb, ids)
    port = free_port()
    log = tmp_path / "index.log"
    started = await wdb.fetchval("SELECT now()")
    # Pool sizes meant for servers: the process keeps to its own three connections.
    sizes = {"NEWSGRAPH_POOL_MIN_SIZE": "8", "NEWSGRAPH_POOL_MAX_SIZE": "8"}
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "service.cli", "index", "--metrics-port", str(port),
            env=_env(worker_url, **sizes), stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        # Indexed by the indexer thread, then the lists stored by the refresher.
        await _eventually(lambda: _indexed_and_listed(wdb, ids), within=30)
        held = await wdb.fetchval(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND backend_start > $1 AND pid <> pg_backend_pid()",
            started,
        )
        assert 1 <= held <= 3, held

        async def reported() -> bool:
            async with httpx.AsyncClient(timeout=2) as http:
                try:
                    text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
                except httpx.TransportError:
                    return False
            return "newsgraph_related_indexed_total 3.0" in text

        await _eventually(reported, within=15)
        process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(process.wait(), 20) == 0, log.read_text()
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    assert "related indexer process" in log.read_text()
    assert "stopped (3 ids claimed)" in log.read_text(), log.read_text()


def test_the_indexer_process_stops_when_the_server_that_started_it_is_killed(
    worker: tuple[str, Database], tmp_path: Path
) -> None:
    worker_url = worker[0]
    # A stand-in for `newsgraph serve`: a shell that starts the child with its own pid.
    log = tmp_path / "index.log"
    log.touch()
    shell = subprocess.Popen(
        [
            "sh", "-c",
            f'"{sys.executable}" -m service.cli index --parent-pid $$ >>"{log}" 2>&1 & '
            "echo $!; wait",
        ],
        env=_env(worker_url),
        stdout=subprocess.PIPE,
    )  # fmt: skip
    assert shell.stdout is not None
    with shell.stdout:
        child = int(shell.stdout.readline())
    try:
        _until(lambda: "running" in log.read_text(), within=30)
        assert _alive(child)
        shell.kill()  # SIGKILL: nothing stops the child but its own watch
        shell.wait()
        _until(lambda: not _alive(child), within=15)
    finally:
        if _alive(child):
            os.kill(child, signal.SIGKILL)
    assert "is gone; stopping" in log.read_text(), log.read_text()


def test_a_server_starts_another_indexer_process_when_its_own_dies(
    worker: tuple[str, Database],
) -> None:
    supervisor = IndexerProcess(_env(worker[0]))
    supervisor.start()
    try:
        _until(lambda: supervisor.pid is not None, within=10)
        first = supervisor.pid
        assert first is not None
        os.kill(first, signal.SIGKILL)
        _until(lambda: supervisor.pid not in (None, first), within=20)  # after 1 s
        second = supervisor.pid
        assert second is not None
        assert supervisor.starts == 2
    finally:
        supervisor.stop(within=20)
    assert not _alive(second)
    assert supervisor.pid is None
    time.sleep(1.5)  # longer than the first restart delay: none is started after stop
    assert supervisor.starts == 2


def test_the_refresher_steps_back_while_the_indexer_process_has_a_backlog(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(lists, "_last_ingest", -lists.BUSY_SECONDS)  # nothing lately
    metrics = Metrics()
    observe_queue(metrics, 0, 0)
    assert not lists.ingesting()
    assert lists.rest_after(1.0, 0.5) == pytest.approx(1.0)
    observe_queue(metrics, 1200, 800)  # articles wait: a fifth of the share
    assert lists.ingesting()
    assert lists.rest_after(1.0, 0.5) == pytest.approx(9.0)
    exposed = metrics.exposition().decode()
    assert "newsgraph_related_queue_depth 1200.0" in exposed
    assert "newsgraph_related_indexed_total 800.0" in exposed
