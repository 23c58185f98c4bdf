"""Compute related-stories signals (vectors, MinHash bands, stories) for stored articles.

Articles ingested before migration 0005 have none; this runs the ingest hook
(`service.related.clustering.index_articles`) over them in batches, newest first, and prints
the cost per article. On the 1M bench database:

    python bench/related_backfill.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench_i4 \
        --limit 200000
"""

from __future__ import annotations

import argparse
import asyncio
import time

import asyncpg

from service.config import Settings
from service.db.pool import open_database
from service.related.clustering import WrittenArticle, index_articles

SELECT_IDS = """
SELECT a.id FROM articles a
WHERE NOT EXISTS (SELECT 1 FROM article_signals s WHERE s.article_id = a.id)
ORDER BY a.published_at DESC, a.id DESC
LIMIT $1
"""
SELECT_ROWS = """
SELECT a.id, a.source_id, a.language, a.title, a.summary, a.body, a.published_at,
       a.published_at_estimated
FROM articles a WHERE a.id = ANY($1::bigint[])
ORDER BY a.published_at, a.id
"""


async def backfill(
    dsn: str, limit: int, batch: int, clear_refresh_log: bool, vacuum: bool = True
) -> None:
    # The id list of a whole database takes longer than a request may.
    settings = Settings.from_environ(
        {"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent",
         "NEWSGRAPH_STATEMENT_TIMEOUT_MS": "600000"}
    )  # fmt: skip
    async with open_database(settings) as db:
        ids = [r["id"] for r in await db.fetch(SELECT_IDS, limit)]
        start = time.perf_counter()
        # Oldest first, as they would have arrived; the rows of one batch at a time.
        ids.reverse()
        for offset in range(0, len(ids), batch):
            chunk = await db.fetch(SELECT_ROWS, ids[offset : offset + batch])
            async with db.transaction() as w:
                await index_articles(
                    w,
                    [
                        WrittenArticle(
                            article_id=r["id"],
                            created=True,
                            source_id=r["source_id"],
                            language=r["language"],
                            title=r["title"],
                            summary=r["summary"],
                            body=r["body"],
                            published_at=r["published_at"],
                            estimated=r["published_at_estimated"],
                        )
                        for r in chunk
                    ],
                )
            if offset // batch % 20 == 0:
                done = offset + len(chunk)
                spent = time.perf_counter() - start
                print(f"{done:,} articles, {spent / done * 1e6:.0f} µs/article", flush=True)
        spent = time.perf_counter() - start
        print(
            f"done: {len(ids):,} articles in {spent:.0f} s, "
            f"{spent / max(len(ids), 1) * 1e6:.0f} µs/article"
        )
        if clear_refresh_log:
            # For benches that must not spend their run on the refresher's backlog (the lists
            # stay unstored: related_latency.py --store-sample stores those it asks for).
            async with db.transaction() as w:
                cleared = await w.execute("DELETE FROM related_refresh")
            print(f"related-lists refresh log cleared ({cleared})")
    # Fresh tables: the planner walks the postings index in order only with statistics.
    # Without VACUUM (--no-vacuum), no page of the new postings is all-visible yet, so their
    # index-only scans read the heap too: the state autovacuum would leave them in.
    command = "VACUUM ANALYZE" if vacuum else "ANALYZE"
    await asyncio.to_thread(_analyze, dsn, command)
    print(f"{command} done")


def _analyze(dsn: str, command: str) -> None:
    async def run() -> None:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(command)
        finally:
            await conn.close()

    asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--limit", type=int, default=10**9)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument(
        "--clear-refresh-log",
        action="store_true",
        help="empty the related-lists refresh log afterwards (lists then stay unstored)",
    )
    parser.add_argument(
        "--no-vacuum",
        action="store_true",
        help="ANALYZE only: the new rows' pages stay not all-visible (see migration 0015)",
    )
    args = parser.parse_args()
    asyncio.run(
        backfill(args.dsn, args.limit, args.batch, args.clear_refresh_log, not args.no_vacuum)
    )


if __name__ == "__main__":
    main()
