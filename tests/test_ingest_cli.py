"""`newsgraph ingest FILE|-` (service/ingest_cli.py) against the session database.

Its articles live under https://cli-test.example/<run>/, dated 2003, so other tests that
read the session database do not meet them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
import pytest_asyncio

from service.config import Settings
from service.db.pool import Database
from service.ingest_cli import add_ingest_parser, cmd_ingest
from tests.support import create_database, drop_database

RUN = uuid.uuid4().hex[:10]


def article(key: str, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "url": f"https://cli-test.example/{RUN}/{key}",
        "title": f"Clientia vorn {key}",
        "publishedAt": "2003-04-05T06:07:08Z",
        "language": "en",
        "source": {"domain": "cli-test.example", "name": "CLI Test Wire"},
    }
    item.update(overrides)
    return item


def line(item: object) -> bytes:
    return orjson.dumps(item) + b"\n"


def arguments(*argv: str) -> argparse.Namespace:
    """Parsed as `newsgraph` parses them, through the command's own parser."""
    parser = argparse.ArgumentParser(prog="newsgraph")
    add_ingest_parser(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["ingest", *argv])


async def run(settings: Settings, *argv: str) -> int:
    # cmd_ingest runs its own event loop, as it does under `newsgraph`.
    return await asyncio.to_thread(cmd_ingest, arguments(*argv), settings)


async def stored(db: Database, keys: list[str]) -> int:
    urls = [f"https://cli-test.example/{RUN}/{key}" for key in keys]
    count: int = await db.fetchval(
        "SELECT count(*) FROM articles WHERE canonical_url = ANY($1::text[])", urls
    )
    return count


async def test_a_file_with_a_bad_line_stores_the_rest_and_writes_the_rejects(
    settings: Settings, db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad_json = b'{"url": "https://cli-test.example/broken", "title": "Unclosed'
    source = tmp_path / "articles.ndjson"
    source.write_bytes(
        line(article("file-0"))
        + b"\n"  # line 2: blank
        + line(article("file-1"))
        + bad_json
        + b"\n"  # line 4
        + line(article("file-wrong", title=["not", "a", "string"]))  # line 5
        + line(article("file-2"))
    )
    rejects = tmp_path / "rejects.ndjson"
    results = tmp_path / "results.ndjson"
    status = await run(
        settings, str(source), "--rejects", str(rejects), "--results", str(results),
        "--batch-size", "2",
    )  # fmt: skip
    assert status == 1
    assert await stored(db, ["file-0", "file-1", "file-2"]) == 3
    assert await stored(db, ["file-wrong"]) == 0

    rejected = [orjson.loads(text) for text in rejects.read_bytes().splitlines()]
    assert [r["line"] for r in rejected] == [4, 5]
    assert rejected[0]["input"] == bad_json.decode()
    assert rejected[0]["errors"][0]["path"] == "line"
    assert rejected[0]["errors"][0]["message"].startswith("line is not valid JSON")
    assert orjson.loads(rejected[1]["input"]) == article("file-wrong", title=["not", "a", "string"])
    assert [(e["path"], e["message"]) for e in rejected[1]["errors"]] == [
        ("title", "must be a string")
    ]
    answered = [orjson.loads(text) for text in results.read_bytes().splitlines()]
    assert [(r["line"], r["status"]) for r in answered] == [
        (1, "CREATED"),
        (3, "CREATED"),
        (4, "REJECTED"),
        (5, "REJECTED"),
        (6, "CREATED"),
    ]

    err = capsys.readouterr().err
    assert "ingest: 5 articles in " in err
    assert "3 created, 0 updated, 0 unchanged, 2 rejected" in err
    # With no server running, the command itself indexed the related stories it queued.
    assert "ingest: related stories indexed for " in err
    urls = [f"https://cli-test.example/{RUN}/file-{n}" for n in range(3)]
    indexed = await db.fetchval(
        "SELECT count(*) FROM article_signals s JOIN articles a ON a.id = s.article_id "
        "WHERE a.canonical_url = ANY($1::text[])",
        urls,
    )
    assert indexed == 3
    assert f"rejected lines written to {rejects}" in err

    assert await run(settings, str(source)) == 1
    assert "0 created, 0 updated, 3 unchanged, 2 rejected" in capsys.readouterr().err


async def test_a_clean_file_exits_0(
    settings: Settings, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "clean.jsonl"
    source.write_bytes(line(article("clean-0")) + line(article("clean-1")).rstrip(b"\n"))
    assert await run(settings, str(source)) == 0
    assert "2 created, 0 updated, 0 unchanged, 0 rejected" in capsys.readouterr().err


async def test_a_missing_file_is_a_usage_error(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    assert await run(settings, str(tmp_path / "nope.ndjson")) == 2
    assert "nope.ndjson" in caplog.text
    assert "No such file" in caplog.text


def test_the_batch_size_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        arguments("-", "--batch-size", "0")
    assert exit_info.value.code == 2
    assert "must be at least 1" in capsys.readouterr().err


@pytest_asyncio.fixture
async def empty_url(server_url: str) -> Any:
    name = f"newsgraph_cli_empty_{os.getpid()}"
    url = await create_database(server_url, name)
    try:
        yield url
    finally:
        await drop_database(server_url, name)


async def test_an_unmigrated_database_is_a_configuration_error(
    empty_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = tmp_path / "one.ndjson"
    source.write_bytes(line(article("unmigrated")))
    settings = Settings.from_environ({"DATABASE_URL": empty_url, "NEWSGRAPH_POOL_MIN_SIZE": "0"})
    assert await run(settings, str(source)) == 2
    assert "run `newsgraph migrate`" in caplog.text


async def test_stdin_through_the_newsgraph_command(database_url: str, db: Database) -> None:
    # Needs `ingest` registered in service/cli.py (add_ingest_parser).
    body = line(article("stdin-0")) + b"[]\n" + line(article("stdin-1"))
    env = {**os.environ, "DATABASE_URL": database_url}
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "service.cli", "ingest", "-", "--results", "-"],
        input=body,
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    err = done.stderr.decode()
    assert done.returncode == 1, err
    assert "2 created, 0 updated, 0 unchanged, 1 rejected" in err
    answered = [orjson.loads(text) for text in done.stdout.splitlines()]
    assert [(r["line"], r["status"]) for r in answered] == [
        (1, "CREATED"),
        (2, "REJECTED"),
        (3, "CREATED"),
    ]
    assert await stored(db, ["stdin-0", "stdin-1"]) == 2
