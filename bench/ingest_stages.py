"""Where the ingest pipeline's time goes, stage by stage, on bench articles.

    cd bench && python ingest_stages.py \
        --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench_stages \
        [--articles 3000] [--batch 500] [--explain]

The database must be a copy of the 1M-article bench database (its name must start with
`newsgraph_bench_`, never the template itself): `createdb -T newsgraph_bench <name>`, then
`DATABASE_URL=... newsgraph migrate`. The articles are stored into it (with fresh URLs each
run), so use a scratch copy.

Prints, per article:
1. CPU of the prepare stage (validation, HTML, language, hashing) without and with entity
   linking, and the CPU of the related-stories text features (which the indexer computes
   after commit since migration 0007) and of their term counts alone: `process_time`, so
   the figures hold on a busy machine too;
2. the write stage: wall time of each SQL statement of `ingest_batch`'s transaction (client
   side, loopback), summed over the run, most expensive first; then the index stage (the
   related-stories queue drained as a server's indexer would: its CPU and statements);
3. with --explain, EXPLAIN (ANALYZE) of one batch's article upsert and link insert inside a
   rolled-back transaction, with the time of each trigger (foreign keys, counters), and the
   trigger times of the index stage's writing statements (run under EXPLAIN ANALYZE, which
   still writes; their wall times then include the plan's instrumentation);
4. the wall time of folding the article counters' deltas (migration 0011) left by the run.
Articles come from bench/ingest.py's generator (same seed, same vocabularies).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import re
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import ingest as bench_ingest

from service.config import Settings
from service.db import counters, writes
from service.db import pool as db_pool
from service.db.catalogue import fetch_surfaces
from service.db.pool import Database, open_database
from service.ingest import pipeline
from service.ingest.catalogue import build_linker
from service.ingest.linking import Linker
from service.related import features, indexer

STATEMENTS: collections.Counter[str] = collections.Counter()
SECONDS: dict[str, float] = collections.defaultdict(float)
# With --explain, the index stage's writing statements run under EXPLAIN (ANALYZE) (they
# still write): milliseconds per trigger (foreign keys, change logs), summed per statement.
TRIGGERS: dict[str, dict[str, float]] = {}
EXPLAINING = {"index stage": False}
_TRIGGER_LINE = re.compile(r"Trigger (?:for constraint )?(\S+): time=([0-9.]+)")


def _time_statements() -> None:
    """Wrap the write transaction's statements with a timer (this process only)."""
    fetch, execute = db_pool.Writer.fetch, db_pool.Writer.execute
    for name in ("fetch", "fetchval", "execute"):
        original = getattr(db_pool.Writer, name)

        def timed(original: Any = original) -> Any:
            async def run(self: db_pool.Writer, sql: str, *args: object) -> Any:
                start = time.perf_counter()
                key = " ".join(sql.split())[:90]
                try:
                    if EXPLAINING["index stage"] and original is execute and _writes(sql):
                        plan = await fetch(self, "EXPLAIN (ANALYZE) " + sql, *args)
                        for row in plan:
                            if found := _TRIGGER_LINE.search(row[0]):
                                times = TRIGGERS.setdefault(key, collections.defaultdict(float))
                                times[found[1]] += float(found[2])
                        return "EXPLAINED"
                    return await original(self, sql, *args)
                finally:
                    SECONDS[key] += time.perf_counter() - start
                    STATEMENTS[key] += 1

            return run

        setattr(db_pool.Writer, name, timed())


def _writes(sql: str) -> bool:
    return sql.lstrip().split(None, 1)[0].upper() in {"INSERT", "UPDATE", "DELETE"}


def _fresh(items: Sequence[dict[str, object]], tag: str) -> list[dict[str, object]]:
    """The same articles under URLs and external ids this run has not stored yet."""
    fresh = []
    for item in items:
        copy = dict(item, url=f"{item['url']}?run={tag}")
        if item.get("canonicalUrl"):
            copy["canonicalUrl"] = f"{item['canonicalUrl']}?run={tag}"
        if item.get("externalId"):
            copy["externalId"] = f"{item['externalId']}-{tag}"
        fresh.append(copy)
    return fresh


def _cpu_per_article(items: Sequence[object], linker: Linker | None) -> float:
    start = time.process_time()
    pipeline._prepare_all(items, linker)
    return (time.process_time() - start) / len(items) * 1e6


def _features_cpu_per_article(items: Sequence[object]) -> tuple[float, float]:
    """CPU of the related-stories text features (the indexer computes them from the stored
    article; before migration 0007 the prepare stage did), and of their term counts alone
    (measured first, so their word cache starts as a fresh process's does)."""
    _, drafts = pipeline._prepare_all(items, None)
    per_article = 1e6 / max(len(drafts), 1)
    start = time.process_time()
    for d in drafts:
        features.term_counts(d.row.title, d.row.summary, d.row.body)
    terms = (time.process_time() - start) * per_article
    start = time.process_time()
    for d in drafts:
        features.text_features(d.row.title, d.row.summary, d.row.body)
    return (time.process_time() - start) * per_article, terms


def _print_statements(title: str, count: int, wall: float) -> None:
    print(f"{title}: {wall / count * 1e6:.0f} µs/article wall, by statement:")
    for key, seconds in sorted(SECONDS.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds / count * 1e6:7.0f} µs/article  {STATEMENTS[key]:4d}x  {key}")
    SECONDS.clear()
    STATEMENTS.clear()


async def _explain(db: Database, items: Sequence[object], linker: Linker) -> None:
    _, drafts = pipeline._prepare_all(items, linker)

    class Rollback(Exception):
        pass

    try:
        async with db.transaction() as w:
            source_ids = await writes.upsert_sources(w, [d.source for d in drafts])
            rows = {
                d.row.canonical_url: dataclasses.replace(
                    d.row, source_id=source_ids[d.source.domain]
                )
                for d in drafts
            }
            plan = await w.fetch(
                "EXPLAIN (ANALYZE) " + writes.UPSERT_ARTICLES,
                writes._json(list(rows.values())),
                None,
            )
            print("articles upsert, one batch:")
            print("\n".join("  " + r[0] for r in plan if "Trigger" in r[0] or "Execution" in r[0]))
            stored = await w.fetch(
                "SELECT id, canonical_url, published_at FROM articles"
                " WHERE canonical_url = ANY($1::text[])",
                list(rows),
            )
            by_url = {r["canonical_url"]: (r["id"], r["published_at"]) for r in stored}
            links = {
                (by_url[d.row.canonical_url][0], m.entity_id): (m.salience, m.mention_count)
                for d in drafts
                for m in d.mentions
            }
            published = dict(by_url.values())
            keys = sorted(links)
            plan = await w.fetch(
                "EXPLAIN (ANALYZE) " + writes.INSERT_LINKS,
                [a for a, _ in keys],
                [e for _, e in keys],
                [links[k][0] for k in keys],
                [links[k][1] for k in keys],
                [published[a] for a, _ in keys],
            )
            print(f"links insert, one batch ({len(keys)} links):")
            print("\n".join("  " + r[0] for r in plan if "Trigger" in r[0] or "Execution" in r[0]))
            raise Rollback
    except Rollback:
        pass


async def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--articles", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--explain", action="store_true")
    args = parser.parse_args(argv)
    name = args.dsn.rsplit("/", 1)[-1].split("?")[0]
    if not name.startswith("newsgraph_bench_"):
        parser.error("--dsn must name a scratch copy whose name starts with newsgraph_bench_")

    now = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    catalogue = await bench_ingest.load_world(args.dsn, args.seed, 1_000_000, now)
    items, _ = bench_ingest.build_inputs(catalogue, args.seed, args.articles)
    settings = Settings.from_environ({"DATABASE_URL": args.dsn})
    async with open_database(settings) as db:
        started = time.perf_counter()
        linker = build_linker(await fetch_surfaces(db))
        print(f"linker: {linker.size:,} surfaces in {time.perf_counter() - started:.1f}s")
        items = _fresh(items, f"{time.time():.0f}")
        # Prepare stage, CPU per article (the features are part of every prepare); one
        # untimed pass first, so neither figure carries first-use costs (tables, models).
        pipeline._prepare_all(items[: args.batch], linker)
        print(f"prepare without linking: {_cpu_per_article(items, None):6.0f} µs/article CPU")
        print(f"prepare with linking:    {_cpu_per_article(items, linker):6.0f} µs/article CPU")
        text, terms = _features_cpu_per_article(items)
        print(f"text features (indexer): {text:6.0f} µs/article CPU")
        print(f"  of which term counts:   {terms:6.0f} µs/article CPU (first pass)")
        if args.explain:
            await _explain(db, items[: args.batch], linker)
        _time_statements()
        wall = 0.0
        for start in range(0, len(items), args.batch):
            _, drafts = pipeline._prepare_all(items[start : start + args.batch], linker)
            begun = time.perf_counter()
            await pipeline._store(db, drafts)
            wall += time.perf_counter() - begun
        count = len(items)
        _print_statements("write stage (the ingest transaction)", count, wall)
        # The article counters' deltas (migration 0011), folded as a server's folder would
        # (it folds every second, so over fewer batches than this at a time).
        begun = time.perf_counter()
        await counters.fold_counts(db)
        print(f"counter fold: {(time.perf_counter() - begun) / count * 1e6:.0f} µs/article wall")
        SECONDS.clear()
        STATEMENTS.clear()
        EXPLAINING["index stage"] = args.explain
        # The second stage: what a server's indexer does after commit, in batches of
        # indexer.BATCH_SIZE (CPU in this process: text features, vectors, clustering).
        begun, cpu = time.perf_counter(), time.process_time()
        indexed = await indexer.drain(db)
        wall = time.perf_counter() - begun
        print(
            f"index stage: {indexed:,} queued articles, "
            f"{(time.process_time() - cpu) / max(indexed, 1) * 1e6:.0f} µs/article CPU"
        )
        _print_statements("index stage", max(indexed, 1), wall)
        for key, times in TRIGGERS.items():
            print(f"index stage triggers of {key}")
            for name, ms in sorted(times.items(), key=lambda kv: -kv[1]):
                print(f"  {ms * 1e3 / max(indexed, 1):7.0f} µs/article  {name}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
