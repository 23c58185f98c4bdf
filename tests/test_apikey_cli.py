"""`newsgraph apikey create|list|revoke`."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import uuid

import pytest

from service.apikey_cli import add_apikey_parser, cmd_apikey, parse_sources
from service.auth import KeyStore, Role, server_secret
from service.config import Settings
from service.db.pool import Database
from service.errors import Unauthenticated

RUN = uuid.uuid4().hex[:8]


def arguments(*argv: str) -> argparse.Namespace:
    """Parsed as `newsgraph` parses them, through the command's own parser."""
    parser = argparse.ArgumentParser(prog="newsgraph")
    add_apikey_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["apikey", *argv])


async def run(settings: Settings, *argv: str) -> int:
    # cmd_apikey runs its own event loop, as it does under `newsgraph`.
    return await asyncio.to_thread(cmd_apikey, arguments(*argv), settings)


async def test_create_prints_the_key_once_and_it_works(
    settings: Settings, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"partner {RUN}"
    assert await run(settings, "create", "--name", name, "--role", "ingest",
                     "--sources", "A.example, www.b.example") == 0  # fmt: skip
    out, err = capsys.readouterr()
    token = out.strip()
    assert token.startswith("ng_")
    assert "only time the key is shown" in err
    principal = await KeyStore(db, server_secret(settings), ttl=5).authenticate(token)
    assert principal.name == name
    assert principal.role is Role.INGEST
    assert principal.sources == frozenset({"a.example", "b.example"})
    stored = await db.fetchrow("SELECT prefix, key_hash FROM api_keys WHERE name = $1", name)
    assert stored is not None
    assert stored["prefix"] == token[:10]
    assert token.encode() not in bytes(stored["key_hash"])  # only the keyed hash is kept


async def test_list_shows_keys_without_their_secret_and_revoke_marks_them(
    settings: Settings, db: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    name = f"app {RUN}"
    assert await run(settings, "create", "--name", name, "--role", "reader") == 0
    token = capsys.readouterr().out.strip()
    assert await run(settings, "list") == 0
    listing = capsys.readouterr().out
    header, *rows = listing.splitlines()
    assert header.split() == [
        "ID", "NAME", "ROLE", "PREFIX", "SOURCES", "CREATED", "LAST", "USED", "REVOKED"
    ]  # fmt: skip
    row = next(r for r in rows if name in r)
    assert token[:10] + "…" in row
    assert token not in listing
    key_id = row.split()[0]
    assert await run(settings, "revoke", key_id) == 0
    assert "is revoked" in capsys.readouterr().err
    with pytest.raises(Unauthenticated, match="was revoked"):
        await KeyStore(db, server_secret(settings), ttl=5).authenticate(token)
    assert await run(settings, "list") == 0
    revoked_row = next(r for r in capsys.readouterr().out.splitlines() if name in r)
    assert revoked_row.rstrip()[-16:-6].count("-") == 2  # a revocation date, not "-"


async def test_usage_problems_exit_2_and_unknown_ids_exit_1(
    settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await run(settings, "create", "--name", "x", "--role", "ingest") == 2
    assert "needs --sources" in capsys.readouterr().err
    assert await run(settings, "create", "--name", "x", "--role", "reader",
                     "--sources", "a.example") == 2  # fmt: skip
    assert "ingest keys only" in capsys.readouterr().err
    assert await run(settings, "create", "--name", "  ", "--role", "admin") == 2
    assert await run(settings, "revoke", "999999999") == 1
    assert "no key has the id 999999999" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments("create", "--name", "x", "--role", "owner")


def test_sources_are_domains() -> None:
    assert parse_sources("NRK.no, www.vg.no,,nrk.no") == ("nrk.no", "vg.no")
    with pytest.raises(argparse.ArgumentTypeError, match="not a domain: 'http://x'"):
        parse_sources("http://x")


async def test_through_the_newsgraph_command(database_url: str) -> None:
    # Needs `apikey` registered in service/cli.py (add_apikey_parser).
    env = {**os.environ, "DATABASE_URL": database_url}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.cli", "apikey", "create", "--name", f"cli {RUN}",
         "--role", "admin"],
        env=env, capture_output=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout.decode().startswith("ng_")
