"""Re-rank offline over a database kept by `relevance.py --keep` (experiments, not a bench).

Fetches every article's candidates once (the service's own statements), then ranks them with
`find_related.rank` and prints relevance.py's figures, fast enough to compare variants:

    python bench/relevance_lab.py [--all]   # --all: every article is a candidate

Variants are tried by editing find_related in place and running this again.
"""

from __future__ import annotations

import argparse
import asyncio
import pickle
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import asyncpg
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))

from relevance import DATA, SCRATCH, baseline, scores  # noqa: E402

from service.config import Settings  # noqa: E402
from service.db import stories  # noqa: E402
from service.db.pool import open_database  # noqa: E402
from service.related import find_related as fr  # noqa: E402

CACHE = Path("/tmp/relevance_lab.pickle")
IDS = Path("/tmp/relevance_ids.json")  # relevance.py --keep --ids-out /tmp/relevance_ids.json


async def load(server: str, rows: list[dict[str, Any]], everything: bool) -> Any:
    dsn = f"{server.rpartition('/')[0]}/{SCRATCH}"
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    conn = await asyncpg.connect(dsn)
    found = await conn.fetch("SELECT id, title, summary, body FROM articles")
    await conn.close()
    texts = {r["id"]: (r["title"], r["summary"], r["body"]) for r in found}
    ids: dict[str, int] = orjson.loads(IDS.read_bytes())
    parents = sorted(set(ids.values()))
    async with open_database(settings) as db:
        signals: dict[int, stories.ParentSignals] = {}
        candidates: list[stories.Candidate] = []
        for offset in range(0, len(parents), 200):
            s, c = await stories.fetch_candidates(
                db, parents[offset : offset + 200], window=__import__("datetime").timedelta(
                    days=7300), terms=fr.CANDIDATE_TERMS, per_list=fr.PER_LIST,
                entities=fr.PARENT_ENTITIES, by_terms=fr.BY_TERMS, per_entity=fr.PER_ENTITY,
            )  # fmt: skip
            signals.update(s)
            candidates.extend(c)
        import numpy as np

        members = [*signals.values(), *candidates]
        terms = np.unique(np.fromiter((t for m in members for t in m.terms), np.int64))
        idf = fr.Idf.of(*await stories.fetch_term_stats(db, terms.tolist()))
    by_parent: dict[int, list[stories.Candidate]] = defaultdict(list)
    if everything:
        for p in parents:
            for q, s in signals.items():
                if q != p:
                    by_parent[p].append(
                        stories.Candidate(
                            parent=p, article_id=q, source_id=s.source_id, language="en",
                            published_at=s.published_at, dated=s.dated, story_id=s.story_id,
                            duplicate_of=s.duplicate_of, terms=s.terms, weights=s.weights,
                            shared_entities=[], tfs=s.tfs,
                        )
                    )  # fmt: skip
    else:
        for c in candidates:
            by_parent[c.parent].append(c)
    return ids, signals, dict(by_parent), idf, texts


async def cost(server: str, window_days: int, batch: int) -> None:
    """CPU of this process per list ranked online (statements, row decoding, ranking)."""
    dsn = f"{server.rpartition('/')[0]}/{SCRATCH}"
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    async with open_database(settings) as db:
        parents = [r["article_id"] for r in await db.fetch("SELECT article_id FROM article_signals")]
        query = fr.RelatedQuery(first=20, window_days=window_days)
        for _ in range(2):  # the first round warms the statement cache and the page cache
            cpu, wall = time.process_time(), time.perf_counter()
            for offset in range(0, len(parents), batch):
                await fr.find_related(db, parents[offset : offset + batch], query)
            spent, elapsed = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"find_related, windowDays {window_days}, {batch} per call: "
            f"{spent / len(parents) * 1000:.2f} ms CPU, {elapsed / len(parents) * 1000:.2f} ms wall per list"
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--all", action="store_true", help="every article is a candidate")
    parser.add_argument("--refresh", action="store_true", help="reload from the database")
    parser.add_argument("--datasets", default="", help="comma-separated; default all")
    parser.add_argument("--cost", action="store_true", help="measure find_related's CPU per list")
    args = parser.parse_args()
    if args.cost:
        for window in (30, 7300):
            asyncio.run(cost(args.server, window, 2))
        return
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip()]
    cache = CACHE.with_suffix(".all.pickle" if args.all else ".pickle")
    if cache.exists() and not args.refresh:
        ids, signals, by_parent, idf, texts = pickle.loads(cache.read_bytes())
    else:
        ids, signals, by_parent, idf, texts = asyncio.run(load(args.server, rows, args.all))
        cache.write_bytes(pickle.dumps((ids, signals, by_parent, idf, texts)))
    if args.datasets:
        wanted = set(args.datasets.split(","))
        rows = [r for r in rows if r["dataset"] in wanted]
    fr.TEXTS = texts  # type: ignore[attr-defined]
    by_article: dict[int, list[str]] = defaultdict(list)
    for row_id, article_id in ids.items():
        by_article[article_id].append(row_id)
    query = fr.RelatedQuery(first=50, window_days=7300)
    ranked: dict[str, list[str]] = {}
    lists: dict[int, list[int]] = {}
    start = time.process_time()
    for row in rows:
        p = ids[row["id"]]
        if p not in lists:
            items = fr.rank(signals[p], by_parent.get(p, []), query, idf)
            lists[p] = [i.article_id for i in items]
        ranked[row["id"]] = [r for a in lists[p] for r in by_article[a] if r != row["id"]]
    spent = time.process_time() - start
    ours = scores(rows, ranked)
    for dataset, m in ours.items():
        hn = f" HN@5 {m['HN@5']:.3f}" if "HN@5" in m else ""
        print(f"{dataset:22} {m['P@1']:.3f} / {m['R-prec']:.3f} / {m['AP@R']:.3f}{hn}")
    print(f"CPU {spent / max(len(lists), 1) * 1000:.2f} ms per list ({len(lists)} lists)")
    if "--baseline" in sys.argv:
        print(scores(rows, baseline(rows)))


if __name__ == "__main__":
    main()
