"""The `newsgraph` command: serve, index, migrate, ingest, refresh-related, export-schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path

import asyncpg
import uvicorn

from service.apikey_cli import add_apikey_parser
from service.config import ConfigError, Settings
from service.db import migrate, related_lists
from service.db.embedded import EmbeddedPostgres, EmbeddedPostgresError
from service.db.pool import open_database
from service.graphql import export_sdl
from service.ingest_cli import add_ingest_parser
from service.observability import configure_logging, logging_config
from service.related.lists import refresh_once
from service.related.worker import IndexerProcess, run_worker

__all__ = ["main"]

log = logging.getLogger("newsgraph")

EMBEDDED_DATABASE = "newsgraph"


@contextlib.contextmanager
def database_url(settings: Settings) -> Iterator[str]:
    """`DATABASE_URL` when set; otherwise an embedded server, stopped on exit."""
    if settings.database_url:
        yield settings.database_url
        return
    server = EmbeddedPostgres(
        settings.data_dir,
        bindir=settings.pg_bindir,
        run_as=settings.pg_run_as,
        bin_cache=settings.pg_bin_cache,
    )
    log.info("starting embedded PostgreSQL in %s", settings.data_dir)
    admin_dsn = server.start()
    try:
        asyncio.run(_ensure_database(admin_dsn, EMBEDDED_DATABASE))
        yield admin_dsn.rsplit("/", 1)[0] + "/" + EMBEDDED_DATABASE
    finally:
        server.stop()


async def _ensure_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()


async def _load_demo(settings: Settings) -> None:
    from service.demo import load_demo

    async with open_database(settings) as db:
        statuses = await load_demo(db)
    log.info("demo data: %s", ", ".join(f"{n} {s.lower()}" for s, n in sorted(statuses.items())))


def _exit_cleanly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal; turning it
    # into SystemExit lets the embedded database stop in order and the exit status be 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_cleanly)
    embedded = not settings.database_url
    with database_url(settings) as dsn:
        # A database of its own is migrated here; a shared one is migrated by `newsgraph
        # migrate` (a k8s Job), never by every replica at start-up, and never through a
        # transaction-mode pooler, where the advisory lock would not hold.
        if embedded or args.migrate or args.demo:
            migrate.upgrade(dsn)
        settings = settings.with_database(dsn)
        if args.demo:
            asyncio.run(_load_demo(settings))
        # Workers are separate processes that build their settings from the environment.
        os.environ["DATABASE_URL"] = dsn
        host = args.host or settings.host
        port = args.port or settings.port
        log.info("serving GraphQL at http://%s:%s/graphql", host, port)
        indexer = None
        if settings.related_indexer == "process":
            indexer = IndexerProcess(os.environ)
            indexer.start()
        try:
            _run_uvicorn(args, settings, host, port)
        finally:
            if indexer is not None:
                indexer.stop()
    return 0


def _run_uvicorn(args: argparse.Namespace, settings: Settings, host: str, port: int) -> None:
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=args.workers or settings.workers,
        log_level="info",
        # Our JSON logging in every worker process; the access log is ours too.
        log_config=logging_config(settings),
        access_log=False,
        timeout_graceful_shutdown=20,
    )


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    with database_url(settings) as dsn:
        migrate.upgrade(dsn, args.revision)
        log.info("database at revision %s", args.revision)
    return 0


def cmd_export_schema(args: argparse.Namespace, settings: Settings | None) -> int:
    sdl = export_sdl()
    if args.output:
        Path(args.output).write_text(sdl, encoding="utf-8")
    else:
        sys.stdout.write(sdl)
    return 0


async def _refresh_related(settings: Settings, concurrency: int) -> int:
    async with open_database(settings) as db:
        total = await related_lists.queue_depth(db)
        log.info("related lists: %d log rows to work", total)
        started = reported = time.monotonic()
        cpu = time.process_time()
        done = 0

        async def worker() -> None:
            nonlocal done, reported
            while n := await refresh_once(db):
                done += n
                now = time.monotonic()
                if now - reported >= 5:
                    reported = now
                    log.info("related lists: %d rows done, %.0f/s", done, done / (now - started))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if done:
            log.info(
                "related lists: %d log rows in %.0f s, %.2f ms of this process's CPU per row",
                done, time.monotonic() - started, (time.process_time() - cpu) * 1000 / done,
            )  # fmt: skip
    return done


def cmd_refresh_related(args: argparse.Namespace, settings: Settings) -> int:
    """Work the related-lists refresh log to the end (after an upgrade or a backfill)."""
    with database_url(settings) as dsn:
        done = asyncio.run(_refresh_related(replace(settings, database_url=dsn), args.concurrency))
        log.info("related lists: done, %d log rows worked", done)
    return 0


def cmd_index(args: argparse.Namespace, settings: Settings) -> int:
    """Index related stories and refresh the stored lists until SIGTERM (service.related.worker)."""
    port = args.metrics_port if args.metrics_port is not None else settings.indexer_metrics_port
    with database_url(settings) as dsn:
        asyncio.run(
            run_worker(settings.with_database(dsn), parent_pid=args.parent_pid, metrics_port=port)
        )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="newsgraph", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="serve GraphQL (embedded database unless DATABASE_URL)"
    )
    serve.add_argument("--host", help="address to listen on (default NEWSGRAPH_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default NEWSGRAPH_PORT or 8000)")
    serve.add_argument(
        "--workers", type=int, help="worker processes (default NEWSGRAPH_WORKERS or 1)"
    )
    serve.add_argument("--demo", action="store_true", help="load the bundled demo news first")
    serve.add_argument(
        "--migrate",
        action="store_true",
        help="migrate DATABASE_URL's database first (the embedded one always is)",
    )
    serve.set_defaults(handler=cmd_serve)
    migrate_cmd = commands.add_parser("migrate", help="upgrade the database schema")
    migrate_cmd.add_argument("revision", nargs="?", default="head", help="target (default head)")
    migrate_cmd.set_defaults(handler=cmd_migrate)
    add_ingest_parser(commands)
    add_apikey_parser(commands)
    refresh = commands.add_parser(
        "refresh-related",
        help="compute the stored related-stories lists now (what servers do in the background)",
    )
    refresh.add_argument(
        "--concurrency", type=int, default=2, help="batches in flight at once (default 2)"
    )
    refresh.set_defaults(handler=cmd_refresh_related)
    index = commands.add_parser(
        "index",
        help="index related stories and refresh their stored lists until stopped "
        "(what `serve` starts beside its workers)",
    )
    index.add_argument(
        "--metrics-port",
        type=int,
        help="serve this process's Prometheus metrics on the port "
        "(default NEWSGRAPH_INDEXER_METRICS_PORT, or none)",
    )
    # `serve` passes its pid: the child stops once that process is gone.
    index.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    index.set_defaults(handler=cmd_index)
    export = commands.add_parser("export-schema", help="print the GraphQL SDL")
    export.add_argument("--output", "-o", help="write to this file instead of stdout")
    export.set_defaults(handler=cmd_export_schema)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "export-schema":
        return cmd_export_schema(args, None)
    try:
        settings = Settings.from_environ()
    except ConfigError as exc:
        configure_logging(Settings())  # the default format, to say what is wrong
        log.error("%s", exc)
        return 2
    configure_logging(settings)
    try:
        return int(args.handler(args, settings))
    except (ConfigError, EmbeddedPostgresError) as exc:
        log.error("%s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
