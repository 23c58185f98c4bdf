"""`newsgraph ingest FILE|-`: load NDJSON/JSONL articles straight into the database.

The lines follow the rules of `POST /v1/ingest` (the engine is shared:
`service.ingest.stream.ingest_lines`): one article object per line, blank lines skipped but
counted, a line over `NEWSGRAPH_INGEST_MAX_LINE_BYTES` or one that is not a JSON object
rejected alone. Articles are stored in batches (`--batch-size`, default
`NEWSGRAPH_INGEST_BATCH_SIZE`), one transaction each, through the same pipeline as the
service. The database must be migrated (`newsgraph migrate`); without `DATABASE_URL` it is
the embedded one, which must not be in use by a running `newsgraph serve`.

Progress goes to stderr (a bar when stderr is a terminal), then a summary. `--rejects FILE`
writes each rejected line as `{"line", "input", "errors"}` so it can be fixed and sent again
(`input` is null for a line too long to keep); `--results FILE|-` writes one result per
line, as the HTTP endpoint answers.

Exit status: 0 when every line was stored; 1 when some lines were rejected (the others were
stored); 2 for a usage or configuration problem (nothing stored); 3 when storing stopped on
the way, because the database failed or by a bug (lines before the failure are stored: run
again, stored lines come back UNCHANGED).

After storing, the command folds the article counters of entities and sources
(`service.db.counters`, which it also does every `NEWSGRAPH_COUNT_FOLD_SECONDS` while it
runs) and indexes the related stories of what it stored (the queue its
batches filled; a running server's indexer shares that work), so they are complete when it
exits; if that fails, the articles stay queued for the next indexer, and the exit status
does not change.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import stat
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import IO, Final

import asyncpg
import orjson
from tqdm import tqdm

from service.config import Settings
from service.db.counters import CountFolder, fold_counts
from service.db.pool import Database, open_database
from service.errors import ServiceUnavailable
from service.ingest.catalogue import LinkerCache
from service.ingest.stream import LineResult, ingest_lines, pipeline_store, result_line
from service.related.indexer import drain

__all__ = ["add_ingest_parser", "cmd_ingest"]

log = logging.getLogger("newsgraph.ingest")

CHUNK_BYTES: Final = 256 * 1024
STATUSES: Final = ("CREATED", "UPDATED", "UNCHANGED", "REJECTED")
EXIT_OK, EXIT_REJECTED, EXIT_USAGE, EXIT_STOPPED = 0, 1, 2, 3


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_ingest_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the `ingest` command to `newsgraph`'s subcommands."""
    parser = commands.add_parser(
        "ingest",
        help="load articles from NDJSON/JSONL (a file, or - for stdin)",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    parser.add_argument("file", metavar="FILE|-", help="one article object per line; - is stdin")
    parser.add_argument(
        "--batch-size",
        type=_positive,
        metavar="N",
        help="articles per transaction (default NEWSGRAPH_INGEST_BATCH_SIZE or 500)",
    )
    parser.add_argument(
        "--rejects",
        metavar="FILE",
        help='write rejected lines here as NDJSON {"line", "input", "errors"}',
    )
    parser.add_argument(
        "--results",
        metavar="FILE|-",
        help="write one result per line here (- is stdout), as POST /v1/ingest answers",
    )
    parser.set_defaults(handler=cmd_ingest)


class _Progress:
    """A bar on a terminal (bytes read, counts by status, rate); a summary in any case."""

    def __init__(self, total_bytes: int | None) -> None:
        self.started = time.monotonic()
        self.counts: Counter[str] = Counter()
        self.last_line = 0
        self.bar = tqdm(
            total=total_bytes,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc="ingest",
            file=sys.stderr,
            disable=not sys.stderr.isatty(),
            dynamic_ncols=True,
            mininterval=0.2,
        )

    @property
    def lines(self) -> int:
        return sum(self.counts.values())

    def rate(self) -> float:
        return self.lines / max(time.monotonic() - self.started, 1e-9)

    def read(self, size: int) -> None:
        self.bar.update(size)

    def done(self, results: list[LineResult]) -> None:
        self.counts.update(r.status for r in results)
        self.last_line = results[-1].line
        counts = ", ".join(f"{self.counts[s]:,} {s.lower()}" for s in STATUSES)
        self.bar.set_postfix_str(f"{counts}, {self.rate():,.0f} articles/s", refresh=False)

    def summary(self) -> str:
        elapsed = time.monotonic() - self.started
        counts = ", ".join(f"{self.counts[s]:,} {s.lower()}" for s in STATUSES)
        return (
            f"{self.lines:,} articles in {elapsed:.1f} s ({self.rate():,.0f} articles/s): {counts}"
        )

    def close(self) -> None:
        self.bar.close()


async def _chunks(source: IO[bytes], progress: _Progress) -> AsyncIterator[bytes]:
    read = getattr(source, "read1", source.read)
    while chunk := await asyncio.to_thread(read, CHUNK_BYTES):
        progress.read(len(chunk))
        yield chunk


def _reject_line(result: LineResult) -> bytes:
    text = result.input.decode("utf-8", "backslashreplace") if result.input is not None else None
    errors = [{"path": e.path, "code": e.code, "message": e.message} for e in result.errors]
    return orjson.dumps(
        {"line": result.line, "input": text, "errors": errors}, option=orjson.OPT_APPEND_NEWLINE
    )


async def _ingest(
    settings: Settings,
    source: IO[bytes],
    progress: _Progress,
    *,
    batch_size: int,
    rejects: IO[bytes] | None,
    results: IO[bytes] | None,
) -> int:
    async with contextlib.AsyncExitStack() as stack:
        try:
            db = await stack.enter_async_context(open_database(settings))
        except (OSError, asyncpg.PostgresError) as exc:
            log.error("cannot connect to the database: %s", exc)
            return EXIT_USAGE
        catalogue = LinkerCache()
        stack.push_async_callback(catalogue.close)
        if settings.count_fold_seconds:
            folder = CountFolder(db, settings.count_fold_seconds)
            folder.start()
            stack.push_async_callback(folder.stop)
        lines = ingest_lines(
            pipeline_store(db, catalogue),
            _chunks(source, progress),
            batch_size=batch_size,
            max_line_bytes=settings.ingest_max_line_bytes,
            writers=settings.ingest_writers,
            keep_input=rejects is not None,
        )
        try:
            async with contextlib.aclosing(lines):
                async for batch in lines:
                    if rejects is not None:
                        rejects.writelines(_reject_line(r) for r in batch if r.status == "REJECTED")
                    if results is not None:
                        results.writelines(map(result_line, batch))
                    progress.done(batch)
        except asyncpg.exceptions.UndefinedTableError:
            log.error("the database has no schema: run `newsgraph migrate` first")
            return EXIT_USAGE
        except (ServiceUnavailable, asyncpg.PostgresError) as exc:
            log.error(
                "stopped: the database failed (%s). Lines up to %d are stored; run again to"
                " store the rest (stored lines come back unchanged).",
                exc,
                progress.last_line,
            )
            return EXIT_STOPPED
        except Exception:  # a bug: exit 1 would read as "some lines were rejected"
            log.exception("stopped by an unexpected error after line %d", progress.last_line)
            return EXIT_STOPPED
        await _fold_counts(db, progress)
        await _index_related(db, progress)
    return EXIT_REJECTED if progress.counts["REJECTED"] else EXIT_OK


async def _fold_counts(db: Database, progress: _Progress) -> None:
    """Bring the article counters up to date with what was stored (a running server's
    folder would do it within a second; without one, nothing else would)."""
    if not (progress.counts["CREATED"] or progress.counts["UPDATED"]):
        return
    try:
        for _ in range(200):  # another process is folding: after it, again (up to ~10 s)
            if await fold_counts(db):
                break
            await asyncio.sleep(0.05)
    except (ServiceUnavailable, asyncpg.PostgresError, OSError) as exc:
        log.warning(
            "articles stored, but folding their article counts failed (%s); a server or the "
            "next `newsgraph ingest` folds them",
            exc,
        )


async def _index_related(db: Database, progress: _Progress) -> None:
    """Index the related stories of what was stored (queued by each batch's transaction):
    with no server running, nothing else would. A running server's indexer shares the work."""
    if not (progress.counts["CREATED"] or progress.counts["UPDATED"]):
        return
    started = time.monotonic()
    try:
        indexed = await drain(db)
    except (ServiceUnavailable, asyncpg.PostgresError, OSError) as exc:
        log.warning(
            "articles stored, but indexing their related stories stopped (%s); they stay "
            "queued for a server's indexer or the next `newsgraph ingest`",
            exc,
        )
        return
    print(
        f"ingest: related stories indexed for {indexed:,} articles in "
        f"{time.monotonic() - started:.1f} s",
        file=sys.stderr,
    )


def _size(source: IO[bytes]) -> int | None:
    """The input's size when it is a regular file (for the bar's percentage)."""
    try:
        info = os.fstat(source.fileno())
    except (OSError, ValueError):
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def cmd_ingest(args: argparse.Namespace, settings: Settings) -> int:
    # Imported here: service.cli imports this module to register the command.
    from service.cli import database_url

    batch_size = args.batch_size or settings.ingest_batch_size
    with contextlib.ExitStack() as files:
        try:
            source: IO[bytes] = (
                sys.stdin.buffer if args.file == "-" else files.enter_context(open(args.file, "rb"))
            )
            rejects = files.enter_context(open(args.rejects, "wb")) if args.rejects else None
            results: IO[bytes] | None = None
            if args.results == "-":
                results = sys.stdout.buffer
            elif args.results:
                results = files.enter_context(open(args.results, "wb"))
        except OSError as exc:
            log.error("%s: %s", exc.filename or args.file, exc.strerror or exc)
            return EXIT_USAGE
        with database_url(settings) as dsn:
            progress = _Progress(_size(source))
            try:
                status = asyncio.run(
                    _ingest(
                        settings.with_database(dsn),
                        source,
                        progress,
                        batch_size=batch_size,
                        rejects=rejects,
                        results=results,
                    )
                )
            finally:
                progress.close()
        if results is not None:
            results.flush()
        if status != EXIT_USAGE:
            print(f"ingest: {progress.summary()}", file=sys.stderr)
            if rejects is not None and progress.counts["REJECTED"]:
                print(f"ingest: rejected lines written to {args.rejects}", file=sys.stderr)
        return status
