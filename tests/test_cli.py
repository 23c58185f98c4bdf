from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import pytest

from service.cli import main
from service.config import Settings
from service.db import related_lists
from service.db.migrate import head_revision, upgrade
from service.db.pool import open_database
from service.demo import load_demo
from service.graphql import export_sdl
from tests.support import create_database, drop_database, free_port


def test_export_schema_prints_the_sdl(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export-schema"]) == 0
    assert capsys.readouterr().out == export_sdl()


async def test_migrate_brings_a_database_to_head(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"newsgraph_cli_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        monkeypatch.setenv("DATABASE_URL", url)
        assert await asyncio.to_thread(main, ["migrate"]) == 0
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT version_num FROM alembic_version") == head_revision()
        finally:
            await conn.close()
    finally:
        await drop_database(server_url, name)


async def test_refresh_related_works_the_log_to_the_end(
    server_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"newsgraph_cli_refresh_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        await asyncio.to_thread(upgrade, url)
        settings = Settings.from_environ({"DATABASE_URL": url})
        async with open_database(settings) as db:
            await load_demo(db)
            queued = await related_lists.queue_depth(db)
        assert queued > 0
        monkeypatch.setenv("DATABASE_URL", url)
        assert await asyncio.to_thread(main, ["refresh-related", "--concurrency", "3"]) == 0
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT count(*) FROM related_refresh") == 0
            assert await conn.fetchval("SELECT count(*) FROM related_lists") == (
                await conn.fetchval("SELECT count(*) FROM article_signals")
            )
        finally:
            await conn.close()
    finally:
        await drop_database(server_url, name)


def test_bad_configuration_exits_with_a_message(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("NEWSGRAPH_PORT", "eighty")
    assert main(["migrate"]) == 2
    assert "NEWSGRAPH_PORT must be an integer" in caplog.text


def _postgres_processes(data_dir: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if "postgres" in cmdline and str(data_dir) in cmdline:
            found.append(int(entry.name))
    return found


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # The embedded server runs as another user when we are root: it must be able to enter.
    parent = Path(tempfile.mkdtemp(prefix="newsgraph-cli-", dir="/tmp"))
    parent.chmod(0o711)
    try:
        yield parent / "data"
    finally:
        shutil.rmtree(parent, ignore_errors=True)


@pytest.mark.embedded
def test_serve_with_no_configuration_runs_on_an_embedded_database(data_dir: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "TEST_DATABASE_URL"}}
    env["NEWSGRAPH_DATA_DIR"] = str(data_dir)
    log_path = data_dir.parent / "serve.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "serve", "--port", str(port), "--demo"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # a first start may copy the server binaries
        while True:
            assert server.poll() is None, log_path.read_text()
            try:
                if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the server did not become ready"
            time.sleep(0.5)
        response = httpx.post(
            f"{base}/graphql",
            json={"query": "{ articles(first: 3) { totalCount edges { node { title } } } }"},
            timeout=10,
        )
        data = response.json()["data"]["articles"]
        assert data["totalCount"] > 100
        assert len(data["edges"]) == 3
        assert _postgres_processes(data_dir)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(timeout=60)
        finally:
            if server.poll() is None:
                server.kill()
    assert server.returncode == 0, log_path.read_text()
    deadline = time.monotonic() + 15
    while _postgres_processes(data_dir) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _postgres_processes(data_dir) == []
