"""Line-by-line NDJSON ingest: splitting, per-line checks, batching and ordering.

Shared by `POST /v1/ingest` and `newsgraph ingest`, so both apply the same rules: a line
over the cap, not UTF-8, not JSON or not an object is REJECTED alone with its line number;
valid lines go through the pipeline in batches, and results come back in line order, each
only after its batch committed.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncGenerator, AsyncIterable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Final

import orjson

from service.db.pool import Database
from service.ids import encode_id
from service.ingest.catalogue import LinkerCache
from service.ingest.ordering import WriteOrder, WriteTurn
from service.ingest.pipeline import ItemError, ItemResult, ingest_batch
from service.metrics import count_ingest

__all__ = [
    "FLUSH_AFTER",
    "Line",
    "LineResult",
    "LineSplitter",
    "StoreBatch",
    "error_line",
    "ingest_lines",
    "pipeline_store",
    "result_line",
]

FLUSH_AFTER: Final = 0.5
BOM: Final = b"\xef\xbb\xbf"

# Stores a batch: `ingest_batch` bound to a database, called with the items and the batch's
# turn in the stream's order of writes (it prepares first, then writes when the turn allows).
StoreBatch = Callable[
    [Sequence[object], WriteTurn],
    Coroutine[object, object, list[ItemResult]],
]


def pipeline_store(db: Database, catalogue: LinkerCache | None) -> StoreBatch:
    """The pipeline bound to `db`, linking entities with the catalogue's current linker."""

    async def store(items: Sequence[object], turn: WriteTurn) -> list[ItemResult]:
        linker = await catalogue.get(db) if catalogue is not None else None
        return await ingest_batch(db, items, linker=linker, turn=turn)

    return store


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
    """Lines waiting to be sent to the pipeline, in input order."""

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

    def launch(self, order: WriteOrder) -> _Launched:
        """Start storing the lines so far (written when `order` allows); start anew."""
        task = None
        if self.items:
            task = asyncio.create_task(self.store(self.items, order.next()))
        launched = _Launched(task, self._slots, self.keep_input)
        self.items, self._slots = [], []
        return launched


class _Launched:
    """A batch being stored, and the lines (with results already known) it answers."""

    def __init__(
        self,
        task: asyncio.Task[list[ItemResult]] | None,
        slots: list[LineResult | Line],
        keep_input: bool,
    ) -> None:
        self.task = task
        self._slots = slots
        self._keep_input = keep_input

    def ended(self) -> bool:
        """Whether storing has ended (committed or failed): `results` will not wait."""
        return self.task is None or self.task.done()

    def take_leading(self) -> list[LineResult]:
        """The results of lines rejected before the batch's first item (answerable now)."""
        count = next(
            (i for i, slot in enumerate(self._slots) if isinstance(slot, Line)), len(self._slots)
        )
        leading, self._slots = self._slots[:count], self._slots[count:]
        return [slot for slot in leading if isinstance(slot, LineResult)]

    async def results(self) -> list[LineResult]:
        """One result per line, once the batch is committed (its error if it failed)."""
        stored = iter(await self.task if self.task is not None else [])
        ready: list[LineResult] = []
        for slot in self._slots:
            if isinstance(slot, LineResult):
                ready.append(slot)
                continue
            result = next(stored)
            kept = slot.data if self._keep_input and result.status == "REJECTED" else None
            errors = tuple(_relative(e, result.index) for e in result.errors)
            ready.append(LineResult(slot.number, result.status, result.article_id, errors, kept))
        if next(stored, None) is not None:
            raise RuntimeError("the pipeline returned more results than items")
        return ready

    async def cancel(self) -> None:
        """Stop storing the batch (rolled back unless it committed); wait until it stopped."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.wait({self.task})
            if not self.task.cancelled():
                self.task.exception()  # retrieved: a failure here is reported elsewhere or moot


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
    writers: int = 1,
) -> AsyncGenerator[list[LineResult], None]:
    """Results of the NDJSON in `chunks`, in line order, each list once its batch is stored.

    `store` is the pipeline (`ingest_batch` bound to a database); its errors propagate, and
    results not yet yielded then were not stored (except, with `writers` > 1, those of a
    batch written beside the one that failed). Up to `writers` batches are written at once
    (`service.ingest.ordering`). Lists are never empty. With `keep_input`, rejected lines
    carry their bytes (except lines too long to keep).
    """
    splitter = LineSplitter(max_line_bytes)
    batch = _Batch(store, keep_input=keep_input)
    reader = _Reader(chunks)
    order = WriteOrder(writers)
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    # The stages overlap: while up to `writers` batches are written, the next is prepared
    # (validation, HTML, language, linking: CPU in a thread) and the lines after it are read.
    # `pending` holds the batches launched and not yet answered, oldest first.
    pending: deque[_Launched] = deque()
    launched: list[_Launched] = []

    def launch() -> _Launched:
        launched[:] = [b for b in launched if b.task is not None and not b.task.done()]
        launched.append(batch.launch(order))
        return launched[-1]

    async def answer_oldest() -> list[LineResult]:
        """The oldest pending batch's results (once stored), with the lines rejected before
        the next batch's first item."""
        results = await pending.popleft().results()
        return results + (pending[0].take_leading() if pending else [])

    try:
        while True:
            within = None if deadline is None else max(deadline - loop.time(), 0.0)
            chunk = await reader.read(within)
            if chunk is None or not chunk:  # waited long enough, or the end: answer all
                if chunk is not None:
                    for line in splitter.finish():
                        if (item := _decode_or_reject(batch, line, max_line_bytes)) is not None:
                            batch.add_item(line, item)
                pending.append(launch())
                while pending:
                    if ready := await answer_oldest():
                        yield ready
                deadline = None
                if chunk is None:
                    continue
                return
            for line in splitter.feed(chunk):
                if (item := _decode_or_reject(batch, line, max_line_bytes)) is None:
                    continue
                if not pending and not batch.items and (ready := batch.take_ready()):
                    yield ready
                batch.add_item(line, item)
                if deadline is None:
                    deadline = loop.time() + flush_after
                if len(batch.items) >= batch_size:
                    # Each batch is answered as soon as it is stored, even mid-chunk, so a
                    # later failure never leaves a stored batch unanswered.
                    pending.append(launch())
                    if len(pending) > writers:
                        yield await answer_oldest()
                    deadline = loop.time() + flush_after
            while pending and pending[0].ended():  # stored while the lines came: answer them
                yield await answer_oldest()
            if not pending and not batch.items and (ready := batch.take_ready()):
                yield ready
    finally:
        await reader.aclose()
        # A batch still being stored when the caller stops reading is stopped (its
        # transaction rolled back, unless it had already committed: resending is harmless).
        for each in reversed(launched):
            await each.cancel()


def _decode_or_reject(batch: _Batch, line: Line, max_line_bytes: int) -> object | None:
    """The line's item for the pipeline, or None after queueing the line's rejection."""
    item = _decode(line, max_line_bytes)
    if isinstance(item, ItemError):
        kept = line.data if batch.keep_input else None
        batch.add_result(LineResult(line.number, "REJECTED", None, (item,), kept))
        count_ingest(("REJECTED",))
        return None
    return item


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
