"""Statement timeouts: reads are cut short with a clear error; writes get their own budget."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import pytest

from service.config import Settings
from service.db.pool import open_database
from service.errors import ServiceUnavailable


async def test_a_read_over_the_statement_timeout_is_a_clear_503(settings: Settings) -> None:
    quick = dataclasses.replace(settings, statement_timeout_ms=100)
    async with open_database(quick) as db:
        with pytest.raises(ServiceUnavailable, match="statement timeout") as caught:
            await db.fetchval("SELECT pg_sleep(2)")
        assert caught.value.http_status == 503
        assert await db.fetchval("SELECT 1") == 1  # the connection is still good


async def test_write_transactions_get_the_write_timeout(settings: Settings) -> None:
    tuned = dataclasses.replace(settings, statement_timeout_ms=100, write_timeout_ms=3000)
    async with open_database(tuned) as db:
        assert await db.fetchval("SHOW statement_timeout") == "100ms"
        async with db.transaction() as w:
            assert await w.fetchval("SHOW statement_timeout") == "3s"
            # Longer than a read may take, within the write budget.
            await w.execute("SELECT pg_sleep(0.3)")
        # SET LOCAL: the connection goes back to the pool with the read timeout.
        assert await db.fetchval("SHOW statement_timeout") == "100ms"


def test_processes_started_by_tests_read_with_the_tests_timeout() -> None:
    # Servers and commands that tests start as processes take their settings from the
    # environment they inherit: a stalled CI machine must not fail their reads at 5 s either.
    code = (
        "import os; from service.config import Settings; "
        "print(Settings.from_environ(dict(os.environ)).statement_timeout_ms)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=dict(os.environ), capture_output=True, text=True,
        check=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == "30000"
