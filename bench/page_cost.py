"""CPU per compiled page: PostgreSQL's (the backend, from /proc) and this process's.

    .venv/bin/python bench/page_cost.py [--dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench_pg]

Runs the feed, the entity page and the article page through `service.db.pages` (the
functions the compiled operations call) over one connection, one request at a time, and
prints per request the CPU the PostgreSQL backend spent (utime + stime of its process, so
PostgreSQL must run on this machine) and the CPU of this process (decoding, building the
JSON). Alternates the pages for --rounds rounds. The functions keep their signatures across
commits, so running this script from a checkout of an earlier commit compares designs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from service.db import pages
from service.db.pool import Database, connect

TICKS = os.sysconf("SC_CLK_TCK")


def _backend_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def main(dsn: str, requests: int, rounds: int) -> None:
    conn: Any = await connect(dsn)
    await conn.execute("SET jit = off; SET max_parallel_workers_per_gather = 0")
    pid = await conn.fetchval("SELECT pg_backend_pid()")
    db = Database(conn)
    slugs = [
        r["slug"]
        for r in await conn.fetch(
            "SELECT slug FROM entities WHERE article_count BETWEEN 20 AND 200 ORDER BY id LIMIT 20"
        )
    ]
    articles = [
        r["article_id"]
        for r in await conn.fetch(
            "SELECT l.article_id FROM related_lists l WHERE NOT EXISTS "
            "(SELECT 1 FROM related_refresh q WHERE q.article_id = l.article_id) "
            "ORDER BY l.article_id LIMIT 20"
        )
    ]
    if not slugs or not articles:
        raise SystemExit("needs the PostGraphile bench database with its stored lists")

    async def feed(i: int) -> object:
        return await pages.feed_json(db, 20, None)

    async def entity_page(i: int) -> object:
        return await pages.entity_page_json(db, slugs[i % len(slugs)], 20, None)

    async def article_page(i: int) -> object:
        return await pages.article_page_json(db, articles[i % len(articles)], None)

    runs: dict[str, Callable[[int], Awaitable[object]]] = {
        "feed": feed, "entity_page": entity_page, "article_page": article_page,
    }  # fmt: skip
    print(f"{'page':14s} {'round':>5s} {'PostgreSQL µs':>14s} {'this process µs':>16s}")
    for n in range(rounds):
        for name, run in runs.items():
            for i in range(20):
                await run(i)  # plans cached, pages warm
            pg, own = _backend_cpu(pid), time.process_time()
            for i in range(requests):
                await run(i)
            pg_us = (_backend_cpu(pid) - pg) / requests * 1e6
            own_us = (time.process_time() - own) / requests * 1e6
            print(f"{name:14s} {n + 1:5d} {pg_us:14.0f} {own_us:16.0f}", flush=True)
    await conn.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/newsgraph_bench_pg")
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(main(args.dsn, args.requests, args.rounds))
