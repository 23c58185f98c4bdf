"""How long a related-lists refresher's claims take as a backlog drains.

    python bench/refresh_claims.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench_i4 \
        [--rows 100000] [--batch 100] [--vacuum]

Fills the refresh log (`related_refresh`, which must be empty) with --rows rows for articles
that have related-stories signals, then claims and releases them --batch at a time, exactly
as `newsgraph refresh-related` and the indexer's refresher do (`related_lists.claim`, then
`release` in a transaction of its own), but without ranking anything: what the log alone
costs. Prints the mean ms per claim and release at each tenth of the drain, and the total.
--vacuum runs `VACUUM related_refresh` first, which removes the dead rows earlier runs left
(on a server with autovacuum off, as the CI machine's, nothing else does).
The log is empty again at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from service.config import Settings
from service.db import related_lists
from service.db.pool import open_database

FILL = """
INSERT INTO related_refresh (article_id, cascade)
SELECT article_id, false FROM article_signals ORDER BY article_id DESC LIMIT $1
"""


async def run(dsn: str, rows: int, batch: int, vacuum: bool) -> None:
    if not dsn.rsplit("/", 1)[-1].startswith("newsgraph_bench"):
        raise SystemExit("--dsn must name a bench database (newsgraph_bench...)")
    setup = await asyncpg.connect(dsn)
    try:
        if await setup.fetchval("SELECT count(*) FROM related_refresh"):
            raise SystemExit("related_refresh is not empty: a real backlog is not a bench's")
        if vacuum:
            await setup.execute("VACUUM related_refresh")
        await setup.execute(FILL, rows)
        filled = await setup.fetchval("SELECT count(*) FROM related_refresh")
    finally:
        await setup.close()
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    print(f"{filled:,} rows in the log, claimed and released {batch} at a time")
    async with open_database(settings) as db:
        released, spent = 0, []
        started = time.perf_counter()
        next_report = filled // 10
        while True:
            t0 = time.perf_counter()
            claimed = await related_lists.claim(db, batch)
            if not claimed.seqs:
                break
            async with db.transaction() as w:
                await related_lists.release(w, claimed)
            spent.append(time.perf_counter() - t0)
            released += len(claimed.seqs)
            if released >= next_report:
                mean = sum(spent) / len(spent) * 1000
                print(f"  {released:>9,} released: {mean:7.2f} ms per claim and release")
                spent, next_report = [], next_report + filled // 10
        total = time.perf_counter() - started
    print(f"total {total:.1f} s, {released / total:,.0f} rows/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--vacuum", action="store_true", help="VACUUM related_refresh first")
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.rows, args.batch, args.vacuum))


if __name__ == "__main__":
    main()
