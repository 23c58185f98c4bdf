"""Where an online `relatedStories` ranking spends its time, step by step, on a database whose
articles are indexed (e.g. the 1M one of bench/README.md).

For each sampled article, one at a time, in process (no HTTP): the candidate statement
(with the decoding of its rows), the document frequencies of the candidates' terms (once read
fresh, as with no cache, and once from the per-process cache of `find_related`, as a server
that ranked a moment ago has it) with the term set and IDF built, and the ranking itself.
Prints p50 / p99 per step in ms (for the candidate statement also the CPU this process spent
on it: sending, receiving and decoding its rows), and the terms per list.

    python bench/related_steps.py --dsn postgresql://.../newsgraph_bench_i4 [--articles 400]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections import defaultdict

import numpy as np

from service.config import Settings
from service.db import stories
from service.db.pool import open_database
from service.related import find_related as fr

WINDOW_DAYS = 31  # not the stored lists' 30: what a request ranked online asks


async def run(dsn: str, articles: int, seed: int) -> None:
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    query = fr.RelatedQuery(first=10, window_days=WINDOW_DAYS)
    async with open_database(settings) as db:
        rows = await db.fetch(
            f"SELECT article_id FROM article_signals TABLESAMPLE SYSTEM (1) REPEATABLE ({seed})"
            " LIMIT $1",
            articles,
        )
        ids = [r["article_id"] for r in rows]
        spent: dict[str, list[float]] = defaultdict(list)
        sizes: list[int] = []
        for rnd in range(2):  # the first round warms the page cache and the statement cache
            for article in ids:
                t0, c0 = time.perf_counter(), time.process_time()
                signals, candidates = await fr.fetch_candidates(db, [article], WINDOW_DAYS)
                t1, c1 = time.perf_counter(), time.process_time()
                members: list[stories.ParentSignals | stories.Candidate] = [
                    *signals.values(), *candidates,
                ]  # fmt: skip
                terms = np.unique(
                    np.concatenate([np.asarray(m.terms) for m in members]).astype(np.int64)
                )
                await fr._DocumentFrequencies().idf(db, terms)  # nothing kept: all read
                t2 = time.perf_counter()
                idf = await fr._document_frequencies(db).idf(db, terms)  # kept a moment ago
                t3 = time.perf_counter()
                for signal in signals.values():
                    fr.rank(signal, candidates, query, idf)
                t4 = time.perf_counter()
                if rnd:
                    spent["candidate statement"].append(t1 - t0)
                    spent["  of it, this process's CPU"].append(c1 - c0)
                    spent["term set, read, IDF"].append(t2 - t1)
                    spent["kept frequencies, IDF"].append(t3 - t2)
                    spent["ranking"].append(t4 - t3)
                    sizes.append(len(terms))
    print(f"{len(ids)} articles, windowDays {WINDOW_DAYS}, ms per list")
    for step, values in spent.items():
        ms = sorted(v * 1000 for v in values)
        p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
        print(f"  {step:24} p50 {statistics.median(ms):6.2f}  p99 {p99:6.2f}")
    print(f"  terms per list: {statistics.fmean(sizes):.0f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--articles", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.articles, args.seed))


if __name__ == "__main__":
    main()
