"""`POST /v1/ingest`: articles as NDJSON in, one result line per article out, both streamed.

The contract a partner relies on:

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
    goes. A result line is written only after its batch committed: whatever was answered
    is durable.

Failures
    When storing fails before anything was answered, the answer is a plain JSON error
    (503 `SERVICE_UNAVAILABLE`, or 500 with a request id). Once answering has begun, the
    answer ends with one line `{"error": {"code": ..., "message": ...}}` instead. Either way
    the lines answered are stored and the others are not; re-send them (or everything:
    ingest is idempotent, and stored articles come back UNCHANGED). An answer cut off
    without such a line (the connection broke) promises nothing about unanswered lines.

Clients that read only after sending
    Most HTTP libraries send the whole body before reading the answer. Up to
    `OUTBOX_LIMIT_BYTES` of answer (about 50,000 result lines) waits for them here; past
    that the service waits `STALL_TIMEOUT` seconds for the client to read, then stops
    storing, reads and drops the rest of the body, and ends the answer with a
    `LIMIT_EXCEEDED` error line saying where it stopped. Clients that read while they send
    have no limit.

`ingest_lines` is the engine (line splitting, per-line checks, batching, ordering); the
`newsgraph ingest` command uses it too, so both apply the same rules.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Sequence,
)
from dataclasses import dataclass
from functools import partial
from typing import Final

import orjson
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from service.config import Settings
from service.errors import NewsgraphError
from service.ids import encode_id
from service.ingest.pipeline import ItemError, ItemResult, ingest_batch

__all__ = [
    "FLUSH_AFTER",
    "NDJSON_MEDIA_TYPES",
    "Line",
    "LineResult",
    "LineSplitter",
    "StoreBatch",
    "error_line",
    "ingest_lines",
    "ingest_ndjson",
    "result_line",
]

log = logging.getLogger("newsgraph.rest.ingest")

NDJSON: Final = "application/x-ndjson"
NDJSON_MEDIA_TYPES: Final = frozenset({NDJSON, "application/jsonl"})
FLUSH_AFTER: Final = 0.5
OUTBOX_LIMIT_BYTES: Final = 4 * 1024 * 1024
STALL_TIMEOUT: Final = 30.0
BOM: Final = b"\xef\xbb\xbf"
RESEND_HINT: Final = (
    " Lines answered before this are stored, the others are not: send them again"
    " (re-sending stored lines is safe)."
)

StoreBatch = Callable[[Sequence[object]], Awaitable[list[ItemResult]]]


@dataclass(frozen=True, slots=True)
class Line:
    """One non-blank input line; `data` is None when the line was too long (and dropped)."""

    number: int
    data: bytes | None


class LineSplitter:
    """Cuts a byte stream into lines, holding at most one line of `max_bytes` at a time."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._parts: list[bytes] = []
        self._size = 0
        self._too_long = False
        self._number = 0

    def feed(self, chunk: bytes) -> list[Line]:
        lines: list[Line] = []
        view = memoryview(chunk)
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            self._take(view[start:end])
            if (line := self._end_line()) is not None:
                lines.append(line)
            start = end + 1
        self._take(view[start:])
        return lines

    def finish(self) -> list[Line]:
        """The last line, when the stream does not end with a line ending."""
        if not (self._parts or self._too_long):
            return []
        line = self._end_line()
        return [line] if line is not None else []

    def _take(self, part: memoryview) -> None:
        if self._too_long or not part:
            return
        self._size += len(part)
        # One byte more than the cap may be the `\r` of a `\r\n` ending.
        if self._size > self.max_bytes + 1:
            self._too_long = True
            self._parts.clear()
        else:
            self._parts.append(bytes(part))

    def _end_line(self) -> Line | None:
        self._number += 1
        data = None if self._too_long else b"".join(self._parts)
        self._parts.clear()
        self._size = 0
        self._too_long = False
        if data is not None:
            data = data.removesuffix(b"\r")
            if len(data) > self.max_bytes:
                data = None
            elif not data.strip():
                return None
        return Line(self._number, data)


@dataclass(frozen=True, slots=True)
class LineResult:
    """The result of one input line; `input` is kept for rejected lines when asked for."""

    line: int
    status: str
    article_id: int | None = None
    errors: tuple[ItemError, ...] = ()
    input: bytes | None = None


def _kind(value: object) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    return "a number"


def _decode(line: Line, max_bytes: int) -> dict[str, object] | ItemError:
    """The line's JSON object, or why it is not one."""
    if line.data is None:
        return ItemError("line", "LIMIT_EXCEEDED", f"line is longer than {max_bytes} bytes")
    data = line.data.removeprefix(BOM) if line.number == 1 else line.data
    try:
        value = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        try:
            data.decode()
        except UnicodeDecodeError as bad:
            return ItemError(
                "line",
                "BAD_INPUT",
                f"line is not valid UTF-8 (byte 0x{data[bad.start]:02x} at byte {bad.start + 1})",
            )
        return ItemError(
            "line", "BAD_INPUT", f"line is not valid JSON: {exc.msg} at column {exc.colno}"
        )
    if not isinstance(value, dict):
        return ItemError(
            "line", "BAD_INPUT", f"line must be a JSON object (one article), not {_kind(value)}"
        )
    return value


def _relative(error: ItemError, index: int) -> ItemError:
    """The pipeline's `articles[i].field` path as seen from the line: `field` (or `line`)."""
    prefix = f"articles[{index}]"
    if error.path == prefix:
        return ItemError("line", error.code, error.message)
    if error.path.startswith(prefix + "."):
        return ItemError(error.path[len(prefix) + 1 :], error.code, error.message)
    return error


class _Batch:
    """Lines waiting for their batch to be stored, in input order."""

    def __init__(self, store: StoreBatch, *, keep_input: bool) -> None:
        self.store = store
        self.keep_input = keep_input
        self.items: list[object] = []
        self._slots: list[LineResult | Line] = []  # a Line waits for the pipeline's result

    def add_item(self, line: Line, item: object) -> None:
        self.items.append(item)
        self._slots.append(line)

    def add_result(self, result: LineResult) -> None:
        self._slots.append(result)

    def take_ready(self) -> list[LineResult]:
        """Results that need no storing, when no line before them waits for its batch."""
        if self.items or not self._slots:
            return []
        ready = [slot for slot in self._slots if isinstance(slot, LineResult)]
        self._slots.clear()
        return ready

    async def flush(self) -> list[LineResult]:
        stored = iter(await self.store(self.items) if self.items else [])
        ready: list[LineResult] = []
        for slot in self._slots:
            if isinstance(slot, LineResult):
                ready.append(slot)
                continue
            result = next(stored)
            kept = slot.data if self.keep_input and result.status == "REJECTED" else None
            errors = tuple(_relative(e, result.index) for e in result.errors)
            ready.append(LineResult(slot.number, result.status, result.article_id, errors, kept))
        if next(stored, None) is not None:
            raise RuntimeError("the pipeline returned more results than items")
        self.items.clear()
        self._slots.clear()
        return ready


class _Reader:
    """Chunks of a byte stream, read one ahead, with a time limit on each wait."""

    def __init__(self, chunks: AsyncIterable[bytes]) -> None:
        self._chunks = aiter(chunks)
        self._next: asyncio.Task[bytes] | None = None

    async def _read(self) -> bytes:
        async for chunk in self._chunks:
            if chunk:
                return chunk
        return b""

    async def read(self, within: float | None) -> bytes | None:
        """The next chunk; b"" at the end; None if none came `within` seconds (it stays due)."""
        if self._next is None:
            self._next = asyncio.create_task(self._read())
        if not self._next.done():
            await asyncio.wait({self._next}, timeout=within)
            if not self._next.done():
                return None
        task, self._next = self._next, None
        chunk = task.result()
        if chunk:
            self._next = asyncio.create_task(self._read())
        return chunk

    async def aclose(self) -> None:
        """Stop reading; once this returns, nothing of ours waits on the stream."""
        task, self._next = self._next, None
        if task is not None:
            task.cancel()
            await asyncio.wait({task})
            if not task.cancelled():
                task.exception()  # a read that failed as we stopped reading is moot


async def ingest_lines(
    store: StoreBatch,
    chunks: AsyncIterable[bytes],
    *,
    batch_size: int,
    max_line_bytes: int,
    flush_after: float = FLUSH_AFTER,
    keep_input: bool = False,
) -> AsyncGenerator[list[LineResult], None]:
    """Results of the NDJSON in `chunks`, in line order, each list once its batch is stored.

    `store` is the pipeline (`ingest_batch` bound to a database); its errors propagate, and
    results not yet yielded then were not stored. Lists are never empty. With `keep_input`,
    rejected lines carry their bytes (except lines too long to keep).
    """
    splitter = LineSplitter(max_line_bytes)
    batch = _Batch(store, keep_input=keep_input)
    reader = _Reader(chunks)
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    try:
        while True:
            within = None if deadline is None else max(deadline - loop.time(), 0.0)
            chunk = await reader.read(within)
            if chunk is None:  # the batch waited long enough
                yield await batch.flush()
                deadline = None
                continue
            for line in splitter.feed(chunk) if chunk else splitter.finish():
                item = _decode(line, max_line_bytes)
                if isinstance(item, ItemError):
                    kept = line.data if keep_input else None
                    batch.add_result(LineResult(line.number, "REJECTED", None, (item,), kept))
                    continue
                if not batch.items:
                    if ready := batch.take_ready():
                        yield ready
                    deadline = loop.time() + flush_after
                batch.add_item(line, item)
                if len(batch.items) >= batch_size:
                    # Each batch is answered as soon as it is stored, even mid-chunk, so a
                    # later failure never leaves a stored batch unanswered.
                    yield await batch.flush()
                    deadline = None
            if not chunk:
                if ready := await batch.flush():
                    yield ready
                return
            if ready := batch.take_ready():
                yield ready
    finally:
        await reader.aclose()


def result_line(result: LineResult) -> bytes:
    """One answer line: `{"line", "status", "id", "errors"}` and a newline."""
    return orjson.dumps(
        {
            "line": result.line,
            "status": result.status,
            "id": encode_id("Article", result.article_id) if result.article_id else None,
            "errors": [
                {"path": e.path, "code": e.code, "message": e.message} for e in result.errors
            ],
        },
        option=orjson.OPT_APPEND_NEWLINE,
    )


def error_line(code: str, message: str) -> bytes:
    return orjson.dumps(
        {"error": {"code": code, "message": message}}, option=orjson.OPT_APPEND_NEWLINE
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


async def _produce(request: Request, outbox: _Outbox, request_id: str) -> None:
    settings: Settings = request.state.settings
    answered = 0
    lines = ingest_lines(
        partial(ingest_batch, request.state.db),
        request.stream(),
        batch_size=settings.ingest_batch_size,
        max_line_bytes=settings.ingest_max_line_bytes,
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
            f" line {answered}. Read the answer while sending, or send fewer lines per request."
            + RESEND_HINT,
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
    producer = asyncio.create_task(_produce(request, outbox, request_id))
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
