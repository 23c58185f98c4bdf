"""`newsgraph index`: related-stories indexing and list refreshing in a process of their own.

A server process that also indexes shares one interpreter lock between answering requests and
indexing (~0.6 ms of Python per article: text features, vectors, clustering) and ranking
lists for the refresh log (~4 ms per article). During a bulk load that made requests wait
(`/healthz` p99 ~140 ms) and left part of the second core idle. In a process of its own the
same work runs beside the server's, not between its requests: `newsgraph serve` starts one
such process next to its workers (`NEWSGRAPH_RELATED_INDEXER=process`, the default), and a
deployment can run `newsgraph index` on its own instead (API pods then set
`NEWSGRAPH_RELATED_INDEXER=off`).

The process runs `RelatedIndexer` (its own thread, event loop and connection, as in a server
process) and the `Refresher` of the stored lists, which takes a fifth of its share while the
indexer has a backlog (a bulk load: acknowledged articles first, then their lists). It holds
three database connections at most: the indexer's and a pool of two. It stops on SIGTERM or
SIGINT (a batch being indexed is rolled back: its ids stay queued) and, when started by a
server, as soon as that server is gone, even if it was killed.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Final

from prometheus_client import CollectorRegistry, multiprocess, start_http_server

from service.config import Settings
from service.db.pool import open_database
from service.metrics import Metrics
from service.related.indexer import RelatedIndexer
from service.related.lists import note_ingest, running_refresher

__all__ = ["IndexerProcess", "observe_queue", "run_worker"]

log = logging.getLogger("newsgraph.related")

# The refresher runs one statement at a time and the indexer has a connection of its own, so
# the pool needs two connections at most, whatever NEWSGRAPH_POOL_MAX_SIZE gives servers.
POOL_SIZE: Final = 2
PARENT_CHECK_SECONDS: Final = 1.0
RESTART_SECONDS: Final = (1.0, 2.0, 5.0, 10.0, 30.0)
STABLE_SECONDS: Final = 60.0  # a process that ran this long restarts without delay growth


async def run_worker(
    settings: Settings, *, parent_pid: int | None = None, metrics_port: int | None = None
) -> None:
    """Index and refresh until SIGTERM/SIGINT, or until `parent_pid` is no longer the parent."""
    dsn = settings.database_url
    if not dsn:
        raise ValueError("run_worker needs settings.database_url")
    metrics = Metrics(multiproc_dir=settings.metrics_multiproc_dir)
    if metrics_port is not None:
        _serve_metrics(metrics, settings.host, metrics_port)
    settings = replace(
        settings, pool_min_size=min(settings.pool_min_size, 1), pool_max_size=POOL_SIZE
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    indexer = RelatedIndexer(
        dsn,
        write_timeout_ms=settings.write_timeout_ms,
        statement_cache_size=settings.statement_cache_size,
        on_depth=functools.partial(observe_queue, metrics),
    )
    watch = asyncio.create_task(_watch_parent(parent_pid, stop)) if parent_pid else None
    try:
        # Lazy: started while the database is down, the process waits for it.
        async with open_database(settings, lazy=True) as db:
            indexer.start()
            try:
                async with running_refresher(
                    db, settings.related_refresh_percent / 100, metrics.observe_related_refresh
                ):
                    log.info("related indexer process %d running", os.getpid())
                    await stop.wait()
            finally:
                await indexer.stop()
    finally:
        if watch is not None:
            watch.cancel()
        metrics.process_exited()
    log.info("related indexer process %d stopped (%d ids claimed)", os.getpid(), indexer.indexed)


def observe_queue(metrics: Metrics, depth: int, indexed: int) -> None:
    """The indexer's reading of the queue: into the metrics, and while articles wait, the
    refresher of this process steps back (`lists.note_ingest`) until they are indexed."""
    metrics.observe_related_queue(depth, indexed)
    if depth:
        note_ingest()


async def _watch_parent(parent_pid: int, stop: asyncio.Event) -> None:
    """Set `stop` once the process that started this one is gone (re-parented)."""
    # A parent's exit sends nothing a child could wait for (short of prctl, Linux only).
    while os.getppid() == parent_pid:  # noqa: ASYNC110
        await asyncio.sleep(PARENT_CHECK_SECONDS)
    log.warning("the server process %d is gone; stopping", parent_pid)
    stop.set()


def _serve_metrics(metrics: Metrics, host: str, port: int) -> None:
    """This process's metrics at http://host:port/ (prometheus_client's own server)."""
    registry = metrics.registry
    if registry is None:  # multiprocess mode: every process's files, as a server's /metrics
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=str(metrics.multiproc_dir))  # type: ignore[no-untyped-call]
    start_http_server(port, addr=host, registry=registry)
    log.info("related indexer metrics at http://%s:%d/metrics", host, port)


class IndexerProcess:
    """`newsgraph index` as a child of this process (`newsgraph serve`), restarted when it
    exits unasked (after 1, 2, 5, 10, then 30 s), stopped with SIGTERM by `stop`.

    The child gets its own session, so a Ctrl-C in a terminal reaches the server only, which
    stops the child after its workers; it also stops by itself when this process is gone.
    """

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = dict(env)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._thread: threading.Thread | None = None
        self.starts = 0

    @property
    def pid(self) -> int | None:
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._supervise, name="newsgraph-indexer-process", daemon=True
        )
        self._thread.start()

    def _supervise(self) -> None:
        command = [sys.executable, "-m", "service.cli", "index", "--parent-pid", str(os.getpid())]
        failures = 0
        while True:
            with self._lock:
                if self._stopping.is_set():
                    return
                proc = subprocess.Popen(command, env=self._env, start_new_session=True)
                self._proc = proc
                self.starts += 1
            started = time.monotonic()
            code = proc.wait()
            if self._stopping.is_set():
                return
            if time.monotonic() - started >= STABLE_SECONDS:
                failures = 0
            delay = RESTART_SECONDS[min(failures, len(RESTART_SECONDS) - 1)]
            failures += 1
            log.warning(
                "the related indexer process %d exited with %s; starting another in %.0f s",
                proc.pid, code, delay,
            )  # fmt: skip
            self._stopping.wait(delay)

    def stop(self, within: float = 15.0) -> None:
        """SIGTERM the child and wait for it (killed after `within` seconds)."""
        with self._lock:
            self._stopping.set()
            proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(within)
            except subprocess.TimeoutExpired:
                log.warning("the related indexer process did not stop in %.0f s; killed", within)
                proc.kill()
                proc.wait()
        if self._thread is not None:
            self._thread.join(5)
