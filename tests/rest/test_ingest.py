"""`POST /v1/ingest`: NDJSON in, one result line per article line out (service/rest/ingest.py).

The `client` fixture's database is the session one, whose writes commit and are seen by
later tests: every article here lives under https://ndjson-test.example/<run>/, is dated
2001 (far below any feed's first page) and uses made-up words, and no test counts the
whole database.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import orjson
import pytest

import service.rest.ingest as ingest_module
from service.app import create_app
from service.config import Settings
from service.db.pool import Database
from service.errors import ServiceUnavailable
from service.ids import decode_id
from service.ingest.ordering import WriteTurn
from service.ingest.pipeline import ItemError, ItemResult, ingest_batch
from service.ingest.stream import LineResult, LineSplitter, ingest_lines
from tests.support import app_client, with_state

RUN = uuid.uuid4().hex[:10]
NDJSON = {"content-type": "application/x-ndjson"}
MIB = 1_048_576


def article(key: str, **overrides: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "url": f"https://ndjson-test.example/{RUN}/{key}",
        "title": f"Ndjsonia quarvel {key}",
        "summary": "Zorbly plinth wexed the ondrome.",
        "publishedAt": "2001-02-03T04:05:06Z",
        "language": "en",
        "source": {"domain": "ndjson-test.example", "name": "NDJSON Test Wire"},
    }
    item.update(overrides)
    return item


def line(item: object) -> bytes:
    return orjson.dumps(item) + b"\n"


def answer(response: httpx.Response) -> list[dict[str, Any]]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/x-ndjson")
    assert response.content.endswith(b"\n") or response.content == b""
    return [orjson.loads(text) for text in response.content.splitlines()]


async def stored(db: Database, keys: Sequence[str]) -> int:
    urls = [f"https://ndjson-test.example/{RUN}/{key}" for key in keys]
    count: int = await db.fetchval(
        "SELECT count(*) FROM articles WHERE canonical_url = ANY($1::text[])", urls
    )
    return count


async def test_new_articles_are_created_then_unchanged_when_sent_again(
    client: httpx.AsyncClient, db: Database
) -> None:
    body = b"".join(line(article(f"happy-{n}")) for n in range(3))
    first = answer(await client.post("/v1/ingest", content=body, headers=NDJSON))
    assert [(r["line"], r["status"], r["errors"]) for r in first] == [
        (1, "CREATED", []),
        (2, "CREATED", []),
        (3, "CREATED", []),
    ]
    assert all(decode_id(r["id"])[0] == "Article" for r in first)
    assert await stored(db, [f"happy-{n}" for n in range(3)]) == 3

    again = answer(await client.post("/v1/ingest", content=body, headers=NDJSON))
    assert [r["status"] for r in again] == ["UNCHANGED"] * 3
    assert [r["id"] for r in again] == [r["id"] for r in first]
    assert await stored(db, [f"happy-{n}" for n in range(3)]) == 3


async def test_jsonl_is_accepted_and_a_changed_article_is_updated(
    client: httpx.AsyncClient,
) -> None:
    headers = {"content-type": "application/jsonl; charset=utf-8"}
    [created] = answer(
        await client.post("/v1/ingest", content=line(article("jsonl")), headers=headers)
    )
    changed = line(article("jsonl", title="Ndjsonia quarvel, revised"))
    [updated] = answer(await client.post("/v1/ingest", content=changed, headers=headers))
    assert (created["status"], updated["status"]) == ("CREATED", "UPDATED")
    assert updated["id"] == created["id"]


async def test_line_numbers_count_blank_lines_and_every_line_ending(
    client: httpx.AsyncClient,
) -> None:
    body = (
        b"\n"  # 1: blank
        + line(article("order-a")).replace(b"\n", b"\r\n")  # 2
        + b"   \t\r\n"  # 3: only whitespace
        + line(article("order-b"))  # 4
        + b"\n\n"  # 5, 6: blank
        + orjson.dumps(article("order-c"))  # 7: last line, no line ending
    )
    results = answer(await client.post("/v1/ingest", content=body, headers=NDJSON))
    assert [(r["line"], r["status"]) for r in results] == [
        (2, "CREATED"),
        (4, "CREATED"),
        (7, "CREATED"),
    ]


async def test_lines_split_anywhere_across_chunks_are_put_back_together(
    client: httpx.AsyncClient,
) -> None:
    body = line(article("chunks-a")).replace(b"\n", b"\r\n") + line(article("chunks-b"))

    async def in_small_pieces() -> AsyncIterator[bytes]:
        for start in range(0, len(body), 7):
            yield body[start : start + 7]

    results = answer(await client.post("/v1/ingest", content=in_small_pieces(), headers=NDJSON))
    assert [(r["line"], r["status"]) for r in results] == [(1, "CREATED"), (2, "CREATED")]


def padded(key: str, size: int) -> bytes:
    """A valid article line of exactly `size` bytes (a key the pipeline ignores pads it)."""
    head = orjson.dumps(article(key, **{"x-padding": ""}))
    assert head.endswith(b'""}')
    return head[:-2] + b"p" * (size - len(head)) + b'"}'


async def test_each_bad_line_is_rejected_alone_while_its_neighbours_are_stored(
    client: httpx.AsyncClient, db: Database
) -> None:
    latin1 = b'{"url": "https://ndjson-test.example/x", "title": "caf\xe9"}'
    at_cap = padded("bad-at-cap", MIB)
    over_cap = padded("bad-over-cap", MIB + 1)
    assert (len(at_cap), len(over_cap)) == (MIB, MIB + 1)
    body = b"".join(
        [
            line(article("bad-0")),  # 1
            b'{"url": "https://ndjson-test.example/broken", "title": \n',  # 2
            line(article("bad-1")),  # 3
            line(article("bad-types", title=5, publishedAt="last tuesday")),  # 4
            line(article("bad-2")),  # 5
            b"[1, 2]\n",  # 6
            line(article("bad-3")),  # 7
            latin1 + b"\n",  # 8: Latin-1, not UTF-8
            line(article("bad-4")),  # 9
            over_cap + b"\n",  # 10
            line(article("bad-5")),  # 11
            at_cap + b"\r\n",  # 12: at the cap (the \r\n is not counted)
            b'"just a string"\n',  # 13
        ]
    )
    results = answer(await client.post("/v1/ingest", content=body, headers=NDJSON))
    assert [r["line"] for r in results] == list(range(1, 14))
    statuses = {r["line"]: r["status"] for r in results}
    assert [n for n, status in statuses.items() if status == "REJECTED"] == [2, 4, 6, 8, 10, 13]
    assert {statuses[n] for n in (1, 3, 5, 7, 9, 11, 12)} == {"CREATED"}
    errors = {r["line"]: r["errors"] for r in results}
    assert [(e["path"], e["code"]) for e in errors[2]] == [("line", "BAD_INPUT")]
    assert errors[2][0]["message"].startswith("line is not valid JSON")
    assert {(e["path"], e["code"]) for e in errors[4]} == {
        ("title", "BAD_INPUT"),
        ("publishedAt", "BAD_INPUT"),
    }
    assert errors[6] == [
        {
            "path": "line",
            "code": "BAD_INPUT",
            "message": "line must be a JSON object (one article), not an array",
        }
    ]
    assert errors[8] == [
        {
            "path": "line",
            "code": "BAD_INPUT",
            "message": f"line is not valid UTF-8 (byte 0xe9 at byte {latin1.index(0xE9) + 1})",
        }
    ]
    assert errors[10] == [
        {
            "path": "line",
            "code": "LIMIT_EXCEEDED",
            "message": "line is longer than 1048576 bytes",
        }
    ]
    assert errors[13][0]["message"].endswith("not a string")
    assert all(r["id"] is None for r in results if r["status"] == "REJECTED")
    assert await stored(db, ["bad-types", "bad-over-cap"]) == 0
    assert await stored(db, ["bad-0", "bad-1", "bad-2", "bad-3", "bad-4", "bad-5"]) == 6
    assert await stored(db, ["bad-at-cap"]) == 1


async def test_results_stay_in_input_order_across_batches(settings: Settings, db: Database) -> None:
    lines = [
        line(article("batches-0")),
        b"not json\n",
        line(article("batches-1")),
        line(article("batches-2")),
        b"\n",
        b"{}\n",  # an object without url or title: the pipeline rejects it
        line(article("batches-3")),
        b"[]\n",
        line(article("batches-0", title="Ndjsonia quarvel, later copy")),
    ]
    async with app_client(dataclasses.replace(settings, ingest_batch_size=2), db) as http:
        results = answer(await http.post("/v1/ingest", content=b"".join(lines), headers=NDJSON))
    assert [(r["line"], r["status"]) for r in results] == [
        (1, "CREATED"),
        (2, "REJECTED"),
        (3, "CREATED"),
        (4, "CREATED"),
        (6, "REJECTED"),
        (7, "CREATED"),
        (8, "REJECTED"),
        (9, "UPDATED"),
    ]
    assert {(e["path"], e["message"]) for e in results[4]["errors"]} == {
        ("url", "is required"),
        ("title", "is required"),
    }
    assert results[7]["id"] == results[0]["id"]


async def test_other_content_types_are_refused_with_415(client: httpx.AsyncClient) -> None:
    for headers in ({"content-type": "application/json"}, {"content-type": "text/plain"}, {}):
        response = await client.post("/v1/ingest", content=line(article("415")), headers=headers)
        assert response.status_code == 415
        assert response.json()["error"]["code"] == "UNSUPPORTED_MEDIA_TYPE"
        assert "application/x-ndjson" in response.json()["error"]["message"]


async def test_a_compressed_body_is_refused_with_415(client: httpx.AsyncClient) -> None:
    headers = {**NDJSON, "content-encoding": "gzip"}
    response = await client.post("/v1/ingest", content=b"\x1f\x8b...", headers=headers)
    assert response.status_code == 415
    assert "uncompressed" in response.json()["error"]["message"]


async def test_only_post_is_allowed(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/ingest")).status_code == 405


async def test_an_empty_body_gets_an_empty_answer(client: httpx.AsyncClient) -> None:
    for body in (b"", b"\n\r\n  \n"):
        response = await client.post("/v1/ingest", content=body, headers=NDJSON)
        assert (response.status_code, response.content) == (200, b"")


async def test_a_body_far_over_the_graphql_limit_is_accepted(
    settings: Settings, db: Database
) -> None:
    # Needs the route's own max_body_size in service/app.py: the app-wide one is for /graphql.
    text = "Ndjsonia wexed the plinth. " * 40
    body = b"".join(line(article(f"big-{n}", body=text)) for n in range(3000))
    small = dataclasses.replace(settings, max_body_bytes=1_048_576)
    assert len(body) > 3 * small.max_body_bytes
    async with app_client(small, db) as client:
        graphql = await client.post(
            "/graphql", content=body, headers={"content-type": "application/json"}
        )
        assert graphql.status_code == 413
        results = answer(await client.post("/v1/ingest", content=body, headers=NDJSON))
    assert len(results) == 3000
    assert {r["status"] for r in results} == {"CREATED"}
    assert await stored(db, [f"big-{n}" for n in range(3000)]) == 3000


def failing_on_call(number: int, error: Exception) -> Any:
    """`ingest_batch` that raises `error` on its `number`th call (1-based)."""
    calls = 0

    async def flaky(db: Database, items: Sequence[object], **options: Any) -> list[ItemResult]:
        nonlocal calls
        calls += 1
        if calls == number:
            raise error
        return await ingest_batch(db, items, **options)

    return flaky


async def test_a_database_failure_mid_stream_ends_the_answer_with_an_error_line(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    unavailable = ServiceUnavailable("The database is unavailable; retry shortly.")
    monkeypatch.setattr(ingest_module, "ingest_batch", failing_on_call(2, unavailable))
    body = b"".join(line(article(f"midway-{n}")) for n in range(5))
    async with app_client(dataclasses.replace(settings, ingest_batch_size=2), db) as http:
        response = await http.post("/v1/ingest", content=body, headers=NDJSON)
    *results, last = answer(response)
    assert [(r["line"], r["status"]) for r in results] == [(1, "CREATED"), (2, "CREATED")]
    assert last["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert "send them again" in last["error"]["message"]
    assert await stored(db, ["midway-0", "midway-1"]) == 2
    assert await stored(db, ["midway-2", "midway-3", "midway-4"]) == 0


async def test_a_database_failure_before_any_result_is_a_503(
    client: httpx.AsyncClient, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    unavailable = ServiceUnavailable("The database is unavailable; retry shortly.")
    monkeypatch.setattr(ingest_module, "ingest_batch", failing_on_call(1, unavailable))
    response = await client.post("/v1/ingest", content=line(article("down")), headers=NDJSON)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert await stored(db, ["down"]) == 0


async def test_an_unexpected_error_is_masked_logged_and_names_the_request(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(ingest_module, "ingest_batch", failing_on_call(1, RuntimeError("bug")))
    response = await client.post(
        "/v1/ingest",
        content=line(article("bug")),
        headers={**NDJSON, "x-request-id": "req-ndjson-1"},
    )
    assert response.status_code == 500
    assert response.json()["error"] == {
        "code": "INTERNAL_SERVER_ERROR",
        "message": "Internal server error (request id req-ndjson-1).",
    }
    assert "req-ndjson-1" in caplog.text
    assert "RuntimeError: bug" in caplog.text


async def test_a_client_that_does_not_read_the_answer_gets_the_rest_of_its_body_drained(
    settings: Settings, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client that sends everything before reading must not hang both sides forever."""
    monkeypatch.setattr(ingest_module, "OUTBOX_LIMIT_BYTES", 1)
    monkeypatch.setattr(ingest_module, "STALL_TIMEOUT", 0.2)
    app = create_app(dataclasses.replace(settings, ingest_batch_size=1), database=db)
    chunks = [line(article(f"stall-{n}")) for n in range(8)]
    received = 0
    body_read = asyncio.Event()
    reading = asyncio.Event()
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received < len(chunks):
            received += 1
            if received == len(chunks):
                body_read.set()
            return {
                "type": "http.request",
                "body": chunks[received - 1],
                "more_body": received < len(chunks),
            }
        await asyncio.Event().wait()  # after the body, only a disconnect could come
        raise AssertionError("unreachable")

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body" and message.get("body"):
            await reading.wait()  # the client reads only once it has sent everything
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/ingest",
        "raw_path": b"/v1/ingest",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/x-ndjson")],
        "server": ("newsgraph.test", 80),
        "client": ("127.0.0.1", 1234),
    }
    async with app.router.lifespan_context(app) as state:
        call = asyncio.create_task(with_state(app, state)(scope, receive, send))
        async with asyncio.timeout(10):
            await body_read.wait()  # while the answer waits, unread
        reading.set()
        async with asyncio.timeout(10):
            await call
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    *results, last = [orjson.loads(text) for text in body.splitlines()]
    assert [r["status"] for r in results] == ["CREATED"] * len(results)
    assert [r["line"] for r in results] == list(range(1, len(results) + 1))
    assert 1 <= len(results) < len(chunks)
    assert last["error"]["code"] == "LIMIT_EXCEEDED"
    assert f"after line {len(results)}" in last["error"]["message"]
    answered = [f"stall-{n}" for n in range(len(results))]
    assert await stored(db, answered) == len(results)
    # Batches overlap (up to `ingest_writers` are written while the next is prepared): at
    # most the batches being written when answering stopped (one line each here) are stored
    # beyond the answered lines.
    beyond = await stored(db, [f"stall-{n}" for n in range(len(results), len(chunks))])
    assert beyond <= settings.ingest_writers


# The engine, without HTTP: splitting, batching, ordering, timing.


def test_the_splitter_gives_the_same_lines_whatever_the_chunks() -> None:
    data = b"a\r\n\nbb\n  \ncc\r\nd" + b"x" * 20 + b"\nlast"
    whole = LineSplitter(8)
    expected = whole.feed(data) + whole.finish()
    assert [(n.number, n.data) for n in expected] == [
        (1, b"a"),
        (3, b"bb"),
        (5, b"cc"),
        (6, None),  # 21 bytes, over the cap of 8
        (7, b"last"),
    ]
    for size in (1, 2, 3, 5):
        splitter = LineSplitter(8)
        pieces = [data[i : i + size] for i in range(0, len(data), size)]
        got = [line for piece in pieces for line in splitter.feed(piece)] + splitter.finish()
        assert got == expected


def test_an_over_long_line_is_dropped_as_it_arrives() -> None:
    splitter = LineSplitter(1024)
    for _ in range(160):  # 10 MiB of one line, in 64 KiB chunks
        assert splitter.feed(b"y" * 65536) == []
        assert sum(len(part) for part in splitter._parts) == 0
    [dropped, after] = splitter.feed(b"y\n{}\n")
    assert (dropped.number, dropped.data, after.data) == (1, None, b"{}")


def test_a_line_exactly_at_the_cap_is_kept_with_either_line_ending() -> None:
    for ending in (b"\n", b"\r\n"):
        splitter = LineSplitter(4)
        assert [n.data for n in splitter.feed(b"abcd" + ending + b"abcde" + ending)] == [
            b"abcd",
            None,
        ]


async def chunks_of(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def test_pipeline_paths_are_made_relative_to_the_line() -> None:
    async def store(items: Sequence[object], after: object) -> list[ItemResult]:
        return [
            ItemResult(0, "REJECTED", errors=(ItemError("articles[0]", "BAD_INPUT", "whole"),)),
            ItemResult(
                1,
                "REJECTED",
                errors=(ItemError("articles[1].entities[0].kind", "BAD_INPUT", "kind"),),
            ),
        ]

    results = [
        r
        async for batch in ingest_lines(
            store, chunks_of(b"{}\n{}\n"), batch_size=10, max_line_bytes=100, keep_input=True
        )
        for r in batch
    ]
    assert results == [
        LineResult(1, "REJECTED", None, (ItemError("line", "BAD_INPUT", "whole"),), b"{}"),
        LineResult(
            2, "REJECTED", None, (ItemError("entities[0].kind", "BAD_INPUT", "kind"),), b"{}"
        ),
    ]


async def test_a_partial_batch_is_stored_soon_when_the_client_pauses(db: Database) -> None:
    first_results = asyncio.Event()

    async def slow_client() -> AsyncIterator[bytes]:
        yield line(article("pause-0")) + line(article("pause-1"))
        async with asyncio.timeout(5):  # the engine must answer without more data
            await first_results.wait()
        yield line(article("pause-2"))

    batches = []
    async for batch in ingest_lines(
        lambda items, turn: ingest_batch(db, items, turn=turn),
        slow_client(),
        batch_size=500,
        max_line_bytes=MIB,
        flush_after=0.05,
    ):
        batches.append([(r.line, r.status) for r in batch])
        first_results.set()
    assert batches == [[(1, "CREATED"), (2, "CREATED")], [(3, "CREATED")]]


async def test_results_wait_for_their_batch_and_failures_leave_later_lines_unanswered() -> None:
    calls: list[int] = []

    async def store(items: Sequence[object], after: object) -> list[ItemResult]:
        calls.append(len(items))
        if len(calls) == 2:
            raise ServiceUnavailable("down")
        return [ItemResult(i, "CREATED", 100 + i) for i in range(len(items))]

    answered: list[tuple[int, str]] = []
    body = b'{"n": 1}\n[]\n{"n": 2}\n[]\n{"n": 3}\n{"n": 4}\n'

    async def send() -> None:
        async for batch in ingest_lines(store, chunks_of(body), batch_size=2, max_line_bytes=100):
            answered.extend((r.line, r.status) for r in batch)

    with pytest.raises(ServiceUnavailable):
        await send()
    # Line 2 is answered after line 1, once that batch is stored; line 4 before the batch
    # of lines 5 and 6, which failed and is not answered.
    assert answered == [(1, "CREATED"), (2, "REJECTED"), (3, "CREATED"), (4, "REJECTED")]
    assert calls == [2, 2]


async def test_the_next_batch_is_prepared_while_one_is_written_and_written_after_it() -> None:
    events: list[str] = []
    second_prepared = asyncio.Event()

    async def store(items: Sequence[object], turn: WriteTurn) -> list[ItemResult]:
        n = items[0]["n"]  # type: ignore[index]
        events.append(f"prepare {n}")
        if n == 2:
            second_prepared.set()
        await turn.wait_for_room()
        events.append(f"write {n}")
        if n == 1:
            # Batch 1 is still being written when batch 2 is prepared.
            async with asyncio.timeout(5):
                await second_prepared.wait()
        turn.finish()
        return [ItemResult(0, "CREATED", n)]

    body = b'{"n": 1}\n{"n": 2}\n{"n": 3}\n'
    answered = [
        (r.line, r.article_id)
        async for batch in ingest_lines(store, chunks_of(body), batch_size=1, max_line_bytes=100)
        for r in batch
    ]
    # Had batch 2 not been prepared while batch 1 was written, batch 1 would time out.
    assert answered == [(1, 1), (2, 2), (3, 3)]
    assert events[:3] == ["prepare 1", "write 1", "prepare 2"]
    assert [e for e in events if e.startswith("write")] == ["write 1", "write 2", "write 3"]


async def test_versions_of_one_url_in_consecutive_batches_are_applied_in_line_order(
    db: Database,
) -> None:
    versions = [article("overlap", title=f"Version {n}") for n in range(6)]
    body = b"".join(map(line, versions))
    statuses = [
        r.status
        async for batch in ingest_lines(
            lambda items, turn: ingest_batch(db, items, turn=turn),
            chunks_of(body),
            batch_size=1,
            max_line_bytes=MIB,
        )
        for r in batch
    ]
    title = await db.fetchval(
        "SELECT title FROM articles WHERE canonical_url = $1", versions[0]["url"]
    )
    assert statuses == ["CREATED"] + ["UPDATED"] * 5
    assert title == "Version 5"
