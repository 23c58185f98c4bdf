"""`POST /v1/ingest`: articles as NDJSON in, one result line per article out, both streamed.

The contract a partner relies on:

Access
    Needs an API key with the `ingest` or `admin` role (`Authorization: Bearer <key>`):
    without one 401, with a `reader` key 403, both as a JSON error (`UNAUTHENTICATED`,
    `FORBIDDEN`). With `NEWSGRAPH_AUTH=off` a request without a key may ingest. An ingest
    key writes only articles of its sources and never one another key wrote last: such a
    line is REJECTED with code FORBIDDEN; each stored article records the key.

Request
    `Content-Type: application/x-ndjson` (or `application/jsonl`; anything else, or a
    `Content-Encoding` such as gzip, is 415).
    One JSON object, an ArticleInput, per line, in UTF-8; lines end in `\\n` or `\\r\\n`, and
    the last one may lack its line ending. Blank lines are skipped but counted, so `line`
    numbers are the ones an editor shows (1-based). The body has no total size limit and is
    never held whole: it is read as it arrives. One line may hold at most
    `ingest_max_line_bytes` bytes (its line ending not counted); a longer line is REJECTED
    alone, its bytes dropped as they arrive.

Answer
    200, `application/x-ndjson`, sent while the request is still arriving: one line per
    non-blank input line, in input order,

        {"line": N, "status": "CREATED" | "UPDATED" | "UNCHANGED" | "REJECTED",
         "id": "<global Article id>" | null, "errors": [{"path", "code", "message"}]}

    An error's `path` is relative to the line's article (`publishedAt`,
    `entities[0].kind`); the path `line` names the line as a whole (too long, not UTF-8,
    not JSON, not an object).

Batches and durability
    Valid lines go through the shared ingest pipeline in batches of `ingest_batch_size`,
    one transaction each. A batch that is not full is stored anyway `FLUSH_AFTER` seconds
    after its first line arrived, so a client that sends slowly gets its results as it
    goes. Up to `ingest_writers` batches are written at once, each on its own connection,
    in line order wherever they share an article (`service.ingest.ordering`). A result line
    is written only after its batch committed, and after the lines before it: whatever was
    answered is durable.

Failures
    When storing fails before anything was answered, the answer is a plain JSON error
    (503 `SERVICE_UNAVAILABLE`, or 500 with a request id). Once answering has begun, the
    answer ends with one line `{"error": {"code": ..., "message": ...}}` instead. Either way
    the lines answered are stored, and of the others at most the batches that were being
    written beside the failed one; re-send them (or everything: ingest is idempotent, and
    stored articles come back UNCHANGED). An answer cut off
    without such a line (the connection broke) promises nothing about unanswered lines.

Clients that read only after sending
    Most HTTP libraries send the whole body before reading the answer. Up to
    `OUTBOX_LIMIT_BYTES` of answer (about 50,000 result lines) waits for them here; past
    that the service waits `STALL_TIMEOUT` seconds for the client to read, then stops
    storing, reads and drops the rest of the body, and ends the answer with a
    `LIMIT_EXCEEDED` error line saying where it stopped. Clients that read while they send
    have no limit.

The engine (line splitting, per-line checks, batching, ordering) is
`service.ingest.stream`, which `newsgraph ingest` uses too, so both apply the same rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterator,
    Sequence,
)
from dataclasses import dataclass
from typing import Final

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from service.auth import Principal, Role, current_principal, require
from service.config import Settings
from service.db.pool import Database
from service.errors import NewsgraphError
from service.ingest.catalogue import LinkerCache
from service.ingest.ordering import WriteTurn
from service.ingest.pipeline import ItemResult, ingest_batch
from service.ingest.stream import StoreBatch, error_line, ingest_lines, result_line

__all__ = ["NDJSON_MEDIA_TYPES", "ingest_ndjson"]

log = logging.getLogger("newsgraph.rest.ingest")

NDJSON: Final = "application/x-ndjson"
NDJSON_MEDIA_TYPES: Final = frozenset({NDJSON, "application/jsonl"})
OUTBOX_LIMIT_BYTES: Final = 4 * 1024 * 1024
STALL_TIMEOUT: Final = 30.0
RESEND_HINT: Final = (
    " Lines answered before this are stored, the others are not: send them again"
    " (re-sending stored lines is safe)."
)


def _error_response(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


@dataclass(frozen=True, slots=True)
class _Failure:
    status: int
    code: str
    message: str


class _AnswerNotRead(Exception):
    pass


class _Outbox:
    """Answer bytes on their way from the task that stores lines to the response."""

    def __init__(self, limit: int, stall_timeout: float) -> None:
        self.limit = limit
        self.stall_timeout = stall_timeout
        self.failure: _Failure | None = None
        self._parts: list[bytes] = []
        self._size = 0
        self._closed = False
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()

    async def put(self, data: bytes) -> None:
        """Queue `data` (stored results: always queued); then wait while the client reads.

        Raises `_AnswerNotRead` when the answer waited `stall_timeout` without being read.
        """
        self._parts.append(data)
        self._size += len(data)
        self._ready.set()
        if self._size >= self.limit:
            self._drained.clear()
            try:
                await asyncio.wait_for(self._drained.wait(), self.stall_timeout)
            except TimeoutError:
                raise _AnswerNotRead from None

    def fail(self, status: int, code: str, message: str) -> None:
        self.failure = _Failure(status, code, message)

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def take(self) -> bytes | None:
        """Everything queued so far; None once closed and empty."""
        while not self._parts:
            if self._closed:
                return None
            self._ready.clear()
            await self._ready.wait()
        data = b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._drained.set()
        return data


def _store_as(db: Database, catalogue: LinkerCache | None, writer: Principal) -> StoreBatch:
    """The pipeline bound to `db`, writing as `writer` (its key recorded, its scope applied)."""

    async def store(items: Sequence[object], turn: WriteTurn) -> list[ItemResult]:
        linker = await catalogue.get(db) if catalogue is not None else None
        return await ingest_batch(db, items, linker=linker, writer=writer, turn=turn)

    return store


async def _produce(request: Request, outbox: _Outbox, request_id: str, writer: Principal) -> None:
    settings: Settings = request.state.settings
    answered = 0
    lines = ingest_lines(
        _store_as(request.state.db, request.state.catalogue, writer),
        request.stream(),
        batch_size=settings.ingest_batch_size,
        max_line_bytes=settings.ingest_max_line_bytes,
        writers=settings.ingest_writers,
    )
    try:
        async with contextlib.aclosing(lines):
            async for results in lines:
                answered = results[-1].line
                await outbox.put(b"".join(map(result_line, results)))
    except ClientDisconnect:
        log.info("ingest request %s: the client left after line %d", request_id, answered)
    except _AnswerNotRead:
        log.warning("ingest request %s: answer unread, stopped after line %d", request_id, answered)
        outbox.fail(
            200,
            "LIMIT_EXCEEDED",
            f"The answer was not read for {outbox.stall_timeout:.0f} s, so storing stopped after"
            f" line {answered} (the batches being written then may be stored too). Read the answer"
            " while sending, or send fewer lines per request." + RESEND_HINT,
        )
        await _discard(request)
    except NewsgraphError as exc:
        outbox.fail(exc.http_status, exc.code, exc.message + (RESEND_HINT if answered else ""))
    except Exception:
        log.exception("unexpected error in POST /v1/ingest (request %s)", request_id)
        outbox.fail(
            500, "INTERNAL_SERVER_ERROR", f"Internal server error (request id {request_id})."
        )
    finally:
        outbox.close()


async def _discard(request: Request) -> None:
    """Read the rest of the body so that a client still sending can get to the answer."""
    try:
        async for _ in request.stream():
            pass
    except (ClientDisconnect, RuntimeError):  # RuntimeError: the body was read to its end
        pass


class _DuplexStreamingResponse(StreamingResponse):
    """A StreamingResponse whose sending overlaps reading the request body.

    Starlette's version (under ASGI < 2.4, which uvicorn's HTTP reports) also awaits
    `receive()` in a second task to notice a disconnect, and that task would take request
    body chunks away from the reader. Here only the reader receives: it sees a disconnect
    itself, and after the body is read the server drops what is sent to a gone client.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.stream_response(send)
        except OSError:
            raise ClientDisconnect from None
        finally:
            if isinstance(self.body_iterator, AsyncGenerator):
                await self.body_iterator.aclose()


async def _answer(
    first: bytes, outbox: _Outbox, producer: asyncio.Task[None]
) -> AsyncIterator[bytes]:
    try:
        yield first
        while (data := await outbox.take()) is not None:
            yield data
        if outbox.failure is not None:
            yield error_line(outbox.failure.code, outbox.failure.message)
    finally:
        producer.cancel()


async def ingest_ndjson(request: Request) -> Response:
    """`POST /v1/ingest` (see the module docstring for the contract)."""
    writer = current_principal(request.state.settings)
    try:
        require(writer, Role.INGEST)
    except NewsgraphError as exc:
        return _error_response(exc.http_status, exc.code, exc.message)
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in NDJSON_MEDIA_TYPES:
        return _error_response(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send NDJSON: Content-Type application/x-ndjson (or application/jsonl), "
            "one article object per line.",
        )
    if request.headers.get("content-encoding", "identity").strip().lower() != "identity":
        return _error_response(
            415,
            "UNSUPPORTED_MEDIA_TYPE",
            "Send the NDJSON uncompressed (no Content-Encoding).",
        )
    request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
    outbox = _Outbox(OUTBOX_LIMIT_BYTES, STALL_TIMEOUT)
    producer = asyncio.create_task(_produce(request, outbox, request_id, writer))
    try:
        first = await outbox.take()
    except BaseException:
        producer.cancel()
        raise
    if first is None:
        await producer
        if outbox.failure is not None:
            failure = outbox.failure
            return _error_response(failure.status, failure.code, failure.message)
        return Response(b"", media_type=NDJSON)
    return _DuplexStreamingResponse(_answer(first, outbox, producer), media_type=NDJSON)
