"""PostgreSQL goes away and comes back: requests fail fast and clearly, then the service recovers.

A PostgreSQL of our own (embedded, on a port of its own) is stopped and started again on the
same port, under a real `newsgraph serve` process with load on it, and under an app started
while the database is down. Bounds are generous deadlines, not timings.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from service.app import create_app
from service.config import Settings
from service.db.embedded import EmbeddedPostgres
from service.db.migrate import upgrade
from tests.support import free_port, with_state

pytestmark = pytest.mark.embedded

ACQUIRE_TIMEOUT = 2.0
# Each answer during the outage must come within the acquire timeout plus this margin.
MARGIN = 3.0
RECOVERY = 5.0
QUERY = {"query": "{ articles(first: 1) { totalCount edges { node { title } } } }"}


class Postgres:
    """An embedded server that can be stopped and started again on the same port."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.server: EmbeddedPostgres | None = None
        self.dsn = ""

    def start(self) -> None:
        if self.server is not None:
            return
        self.server = EmbeddedPostgres(
            self.data_dir,
            port=self.port,
            server_options={"fsync": "off", "synchronous_commit": "off"},
        )
        self.dsn = self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None


@pytest.fixture(scope="module")
def postgres() -> Iterator[Postgres]:
    # The server runs as another user when we are root: it must be able to enter the dir.
    parent = Path(tempfile.mkdtemp(prefix="newsgraph-outage-", dir="/tmp"))
    parent.chmod(0o711)
    pg = Postgres(parent / "data")
    try:
        pg.start()
        upgrade(pg.dsn)
        yield pg
    finally:
        pg.stop()
        shutil.rmtree(parent, ignore_errors=True)


def _settings(dsn: str) -> dict[str, str]:
    return {
        "DATABASE_URL": dsn,
        "NEWSGRAPH_POOL_ACQUIRE_TIMEOUT": str(ACQUIRE_TIMEOUT),
        "NEWSGRAPH_POOL_MIN_SIZE": "2",
        "NEWSGRAPH_POOL_MAX_SIZE": "4",
        "NEWSGRAPH_RATE_LIMIT_ANONYMOUS": "0",  # the load is not a client to slow down
    }


def _code(response: httpx.Response) -> str | None:
    """The error code of an answer (GraphQL or REST), None for a success."""
    body = response.json()
    if response.status_code == 200 and "data" in body and not body.get("errors"):
        return None
    if body.get("errors"):
        return str(body["errors"][0]["extensions"]["code"])
    return str(body["error"]["code"])


def _until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until `check()` held; fails after `seconds`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds} s"
        time.sleep(0.1)
    return time.monotonic() - started


@dataclass
class Load:
    """Clients that query the service in a loop, noting each answer's outcome and time."""

    base: str
    clients: int = 4
    results: list[tuple[float, float, int, str | None]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    response = http.post("/graphql", json=QUERY)
                    outcome = (response.status_code, _code(response))
                except httpx.HTTPError as exc:
                    outcome = (0, type(exc).__name__)
                self.results.append((started, time.monotonic() - started, *outcome))

    def __enter__(self) -> Load:
        self._threads = [threading.Thread(target=self._run) for _ in range(self.clients)]
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)


def _serve(dsn: str, log_path: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, **_settings(dsn)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, f"http://127.0.0.1:{port}"


def _errors(log: str) -> str:
    return "\n".join(line for line in log.splitlines() if '"level":"ERROR"' in line)[-5000:]


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def test_a_restart_under_load_fails_fast_then_recovers_without_a_process_restart(
    postgres: Postgres,
) -> None:
    log_path = postgres.data_dir.parent / "serve.log"
    process, base = _serve(postgres.dsn, log_path)
    try:
        _until(lambda: process.poll() is None and _ready(base), 60)
        with Load(base) as load:
            time.sleep(1)
            down_at = time.monotonic()
            postgres.stop()
            time.sleep(1)  # the clients meet the outage
            with httpx.Client(base_url=base, timeout=30) as http:
                for _ in range(3):
                    started = time.monotonic()
                    ready = http.get("/readyz")
                    graphql = http.post("/graphql", json=QUERY)
                    ingest = http.post(
                        "/v1/ingest",
                        content=b'{"url": "https://outage.example/1", "title": "T"}\n',
                        headers={"content-type": "application/x-ndjson"},
                    )
                    assert time.monotonic() - started < 3 * (ACQUIRE_TIMEOUT + MARGIN)
                    assert ready.status_code == 503
                    assert ready.json()["status"] == "unavailable"
                    assert (graphql.status_code, _code(graphql)) == (200, "SERVICE_UNAVAILABLE")
                    assert (ingest.status_code, _code(ingest)) == (503, "SERVICE_UNAVAILABLE")
                restart_at = time.monotonic()
                postgres.start()
                up_at = time.monotonic()  # PostgreSQL accepts connections again
                recovered = _until(
                    lambda: _code(http.post("/graphql", json=QUERY)) is None, RECOVERY
                )
                assert http.get("/readyz").status_code == 200
                time.sleep(1)  # the clients see the recovery too
                metrics = http.get("/metrics").text
        assert process.poll() is None, "the service must survive without a restart"
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    log = log_path.read_text(errors="replace")
    outcomes = load.results
    during = [r for r in outcomes if down_at <= r[0] < restart_at]
    after = [r for r in outcomes if r[0] >= up_at + recovered]
    print(
        f"\n{len(outcomes)} requests under load, {len(during)} during the outage;"
        f" recovered {recovered:.2f} s after PostgreSQL was back;"
        f" slowest answer {max(r[1] for r in outcomes):.2f} s"
    )
    assert during, "no request met the outage"
    assert after, "no request after the recovery"
    for _, seconds, status, code in outcomes:
        assert seconds < ACQUIRE_TIMEOUT + MARGIN, (seconds, status, code)
        assert status == 200, (status, code, _errors(log))  # never a 500, never a cut connection
        assert code in (None, "SERVICE_UNAVAILABLE"), (code, _errors(log))
    late = [(round(r[0] - up_at, 2), r[3]) for r in after if r[3] is not None]
    assert not late, f"failed after the recovery (s after the restart, code): {late}"
    assert 'newsgraph_graphql_errors_total{code="SERVICE_UNAVAILABLE"}' in metrics
    assert "Traceback" not in "\n".join(
        line for line in log.splitlines() if '"newsgraph.graphql"' in line
    ), "an outage is not an unexpected error"
    assert process.returncode == 0, log[-3000:]


async def test_the_app_starts_while_the_database_is_down_and_recovers(
    postgres: Postgres,
) -> None:
    settings = Settings.from_environ(_settings(postgres.dsn))
    postgres.stop()
    app = create_app(settings)
    try:
        async with app.router.lifespan_context(app) as state:
            transport = httpx.ASGITransport(app=with_state(app, state))
            async with httpx.AsyncClient(transport=transport, base_url="http://ng.test") as http:
                assert (await http.get("/healthz")).status_code == 200
                started = time.monotonic()
                assert (await http.get("/readyz")).status_code == 503
                response = await http.post("/graphql", json=QUERY)
                assert _code(response) == "SERVICE_UNAVAILABLE"
                assert time.monotonic() - started < 2 * (ACQUIRE_TIMEOUT + MARGIN)
                # The embedded server must be started from the main thread: this one.
                postgres.start()
                deadline = time.monotonic() + RECOVERY
                while True:
                    response = await http.post("/graphql", json=QUERY)
                    if _code(response) is None:
                        break
                    assert time.monotonic() < deadline, response.json()
                    await asyncio.sleep(0.1)
                assert (await http.get("/readyz")).status_code == 200
    finally:
        postgres.start()  # for any later test (a no-op when running)
