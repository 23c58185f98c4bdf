"""How long claims from the related-stories logs take as a backlog drains.

    python bench/refresh_claims.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench_q \
        [--log refresh|queue] [--rows 100000] [--batch N] [--vacuum]

Fills a log, which must be empty, with --rows rows, then claims them --batch at a time as the
service does, without ranking or indexing anything: what the log alone costs.
* `--log refresh` (default): the related-lists refresh log (`related_refresh`), claimed with
  `related_lists.claim` and released in a transaction of its own, 100 rows a claim, as
  `newsgraph refresh-related` and the indexer's refresher do;
* `--log queue`: the indexing queue (`related_queue`), claimed with `related_queue.claim` in a
  transaction that commits the deletion, 2,000 ids a claim, as the indexer does.
The rows are for article ids no article has (a log has no key to `articles`), so any bench
database will do. Prints the mean ms per claim at each tenth of the drain, and the total.
A claim's cost should not depend on the backlog. --vacuum runs `VACUUM` on the log first,
which removes the dead rows earlier runs left (on a server with autovacuum off, as the CI
machine's, nothing else does). The log is empty again at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from service.config import Settings
from service.db import related_lists, related_queue
from service.db.pool import Database, open_database
from service.related import indexer, lists

FIRST_ID = 1_000_000_000_000  # above any article id
FILL = {
    "refresh": "INSERT INTO related_refresh (article_id, cascade) "
    "SELECT n, false FROM generate_series($1::bigint, $2::bigint) n",
    "queue": "INSERT INTO related_queue (article_id) "
    "SELECT generate_series($1::bigint, $2::bigint)",
}
TABLES = {"refresh": "related_refresh", "queue": "related_queue"}
BATCHES = {"refresh": lists.REFRESH_BATCH, "queue": indexer.BATCH_SIZE}


async def _claim(db: Database, log: str, batch: int) -> int:
    """One claim as the service makes it; how many rows it took."""
    if log == "queue":
        async with db.transaction() as w:
            return len(await related_queue.claim(w, batch))
    claimed = await related_lists.claim(db, batch)
    if claimed.seqs:
        async with db.transaction() as w:
            await related_lists.release(w, claimed)
    return len(claimed.seqs)


async def run(dsn: str, log: str, rows: int, batch: int, vacuum: bool) -> None:
    if not dsn.rsplit("/", 1)[-1].startswith("newsgraph_bench"):
        raise SystemExit("--dsn must name a bench database (newsgraph_bench...)")
    table = TABLES[log]
    setup = await asyncpg.connect(dsn)
    try:
        if await setup.fetchval(f"SELECT count(*) FROM {table}"):
            raise SystemExit(f"{table} is not empty: a real backlog is not a bench's")
        if vacuum:
            await setup.execute(f"VACUUM {table}")
        await setup.execute(FILL[log], FIRST_ID, FIRST_ID + rows - 1)
    finally:
        await setup.close()
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    print(f"{rows:,} rows in {table}, claimed {batch} at a time")
    async with open_database(settings) as db:
        taken, spent = 0, []
        started = time.perf_counter()
        next_report = rows // 10
        while True:
            t0 = time.perf_counter()
            if not (n := await _claim(db, log, batch)):
                break
            spent.append(time.perf_counter() - t0)
            taken += n
            if taken >= next_report:
                mean = sum(spent) / len(spent) * 1000
                print(f"  {taken:>9,} taken: {mean:7.2f} ms per claim")
                spent, next_report = [], next_report + rows // 10
        total = time.perf_counter() - started
    print(f"total {total:.1f} s, {taken / total:,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--log", choices=sorted(TABLES), default="refresh")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, help="rows a claim (the service's)")
    parser.add_argument("--vacuum", action="store_true", help="VACUUM the log first")
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.log, args.rows, args.batch or BATCHES[args.log], args.vacuum))


if __name__ == "__main__":
    main()
