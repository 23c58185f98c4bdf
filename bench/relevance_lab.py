"""Re-rank offline over a database kept by `relevance.py` (experiments, not a bench).

    python bench/relevance.py --keep --ids-out IDS.json
    python bench/relevance_lab.py --ids IDS.json [--all]   # --all: every article a candidate
    python bench/relevance_lab.py --ids IDS.json --errors  # and ECB+'s errors by kind
    python bench/relevance_lab.py --ids IDS.json --grid    # 27 weightings of the context
    python bench/relevance_lab.py --ids IDS.json --own-outlet  # the parent's outlet by score
    python bench/relevance_lab.py --cost                   # find_related's CPU per list
    python bench/relevance_lab.py --features-cost          # text features' CPU per article

Fetches every article's candidates once with the service's own statement, ranks them with
`find_related.rank` and prints relevance.py's figures per data set, with the ranking's CPU per
list: a variant of the ranking is measured in seconds instead of a full ingest. `--all` shows
what the ranking reaches with perfect candidate recall (every article is a candidate).
`--own-outlet` lists the parent's own outlet's articles by score among the others, as the
TF-IDF baselines rank, instead of leaving them out as `relatedStories` does by default (and
after the others with `includeSameSource`): what that product rule costs on the metric.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any
from unittest import mock

import numpy as np
import orjson
from relevance import DATA, SCRATCH, article_input, scores, window_days

from service.config import Settings
from service.db import stories
from service.db.pool import Database, open_database
from service.related import features
from service.related import find_related as fr


def _settings(server: str) -> Settings:
    dsn = f"{server.rpartition('/')[0]}/{SCRATCH}"
    return Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})


async def _idf(db: Database, members: list[Any]) -> fr.Idf:
    terms = np.unique(np.fromiter((t for m in members for t in m.terms), np.int64))
    found: list[int] = []
    dfs: list[int] = []
    documents = 0
    for offset in range(0, len(terms), 5000):
        documents, t, d = await stories.fetch_term_stats(db, terms[offset : offset + 5000].tolist())
        found += t
        dfs += d
    return fr.Idf.of(documents, found, dfs)


def _as_candidate(parent: int, article_id: int, s: stories.ParentSignals) -> stories.Candidate:
    return stories.Candidate(
        parent=parent, article_id=article_id, source_id=s.source_id, language="en",
        published_at=s.published_at, dated=s.dated, story_id=s.story_id,
        duplicate_of=s.duplicate_of, terms=s.terms, weights=s.weights, shared_entities=[],
        tfs=s.tfs,
    )  # fmt: skip


# Every parent's signals, its candidates and the IDF of their terms.
Loaded = tuple[dict[int, stories.ParentSignals], dict[int, list[stories.Candidate]], fr.Idf]


async def load(server: str, parents: list[int], everything: bool, window: int) -> Loaded:
    async with open_database(_settings(server)) as db:
        signals: dict[int, stories.ParentSignals] = {}
        candidates: list[stories.Candidate] = []
        for offset in range(0, len(parents), 200):
            s, c = await fr.fetch_candidates(db, parents[offset : offset + 200], window)
            signals.update(s)
            candidates.extend(c)
        idf = await _idf(db, [*signals.values(), *candidates])
    by_parent: dict[int, list[stories.Candidate]] = defaultdict(list)
    if everything:
        for p in signals:
            by_parent[p] = [_as_candidate(p, q, s) for q, s in signals.items() if q != p]
    else:
        for candidate in candidates:
            by_parent[candidate.parent].append(candidate)
    return signals, dict(by_parent), idf


async def cost(server: str, days: int, batch: int) -> None:
    """CPU of this process per list ranked online (statements, row decoding, ranking)."""
    async with open_database(_settings(server)) as db:
        rows = await db.fetch("SELECT article_id FROM article_signals")
        parents = [r["article_id"] for r in rows]
        query = fr.RelatedQuery(first=20, window_days=days)
        for _ in range(2):  # the first round warms the statement cache and the page cache
            cpu, wall = time.process_time(), time.perf_counter()
            for offset in range(0, len(parents), batch):
                await fr.find_related(db, parents[offset : offset + batch], query)
            spent, elapsed = time.process_time() - cpu, time.perf_counter() - wall
        per = 1000 / len(parents)
        print(
            f"find_related, windowDays {days}, {batch} per call: "
            f"{spent * per:.2f} ms CPU, {elapsed * per:.2f} ms wall per list"
        )


def features_cost(rows: list[dict[str, Any]]) -> None:
    """CPU of `text_features` per dev article, reading 2,000 characters of a body (the
    prefix before this one) and the current `features.TERM_PREFIX`, alternately."""
    spent: dict[int, list[float]] = defaultdict(list)
    for _ in range(3):
        for prefix in (2000, features.TERM_PREFIX):
            features._term.cache_clear()
            with mock.patch.object(features, "TERM_PREFIX", prefix):
                start = time.process_time()
                for row in rows:
                    features.text_features(row["title"], None, row.get("text"))
                spent[prefix].append((time.process_time() - start) / len(rows) * 1e6)
    for prefix, values in spent.items():
        low, high = min(values), max(values)
        print(f"text_features, {prefix:,} characters of a body: {low:.0f}-{high:.0f} µs/article")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--ids", type=Path, help="relevance.py --ids-out file")
    parser.add_argument("--all", action="store_true", help="every article is a candidate")
    parser.add_argument("--cost", action="store_true", help="measure find_related's CPU per list")
    parser.add_argument("--features-cost", action="store_true", help="text features' CPU")
    parser.add_argument("--grid", action="store_true", help="27 weightings of the context")
    parser.add_argument("--errors", action="store_true", help="ECB+ errors by kind")
    parser.add_argument(
        "--recall", action="store_true", help="ECB+ mates missing from the candidates, added"
    )
    parser.add_argument(
        "--own-outlet", action="store_true", help="the parent's outlet ranked by score too"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="NAME=VALUE",
        help="a find_related constant for this run (e.g. UNKNOWN_TIME=0.7), repeatable",
    )  # fmt: skip
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        for setting in args.set:
            name, _, value = setting.partition("=")
            if not hasattr(fr, name):
                parser.error(f"find_related has no constant {name!r}")
            number = float(value) if "." in value else int(value)
            stack.enter_context(mock.patch.object(fr, name, number))
        _run(args, parser)


def _run(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip()]
    window = window_days(rows)  # relevance.py's
    if args.features_cost:
        features_cost(rows)
        return
    if args.cost:
        for days in (30, window):
            asyncio.run(cost(args.server, days, 2))
        return
    if args.ids is None:
        parser.error("--ids is required (relevance.py --keep --ids-out FILE)")
    ids: dict[str, int] = orjson.loads(args.ids.read_bytes())
    loaded = asyncio.run(load(args.server, sorted(set(ids.values())), args.all, window))
    if args.grid:
        for weights in itertools.product((0.4, 0.6, 0.8), (0.2, 0.4, 0.6), (0.5, 0.7, 0.9)):
            patched = zip(("NEIGHBOUR_WEIGHT", "ROW_WEIGHT", "FEEDBACK"), weights, strict=True)
            with contextlib.ExitStack() as stack:
                for name, value in patched:
                    stack.enter_context(mock.patch.object(fr, name, value))
                ranked, _ = _rank_all(rows, ids, *loaded, window)
            figures = scores(rows, ranked)
            e, u, b = (figures[d] for d in ("ecbplus", "uci_news_aggregator", "basil"))
            print(
                "neighbours {} rows {} feedback {}: ecbplus {:.3f} / {:.3f}, HN@5 {:.3f}; "
                "uci {:.3f}; basil {:.3f}".format(
                    *weights, e["P@1"], e["R-prec"], e["HN@5"], u["R-prec"], b["R-prec"]
                )
            )
        return
    ranked, spent = _rank_all(rows, ids, *loaded, window, own_outlet=args.own_outlet)
    for dataset, m in scores(rows, ranked).items():
        hn = f", HN@5 {m['HN@5']:.3f}" if "HN@5" in m else ""
        print(f"{dataset:22} {m['P@1']:.3f} / {m['R-prec']:.3f} / {m['AP@R']:.3f}{hn}"
              f"  (R-precision {m['R-prec']:.4f})")  # fmt: skip
    if args.own_outlet:
        for dataset, (ceiling, shared, pairs) in _ceilings_under_the_rule(rows).items():
            print(
                f"{dataset:22} {shared:,} of {pairs:,} same-event pairs share an outlet; "
                f"R-precision reachable with the own outlet left out: {ceiling:.4f}"
            )
    print(f"ranking alone: {spent * 1000:.2f} ms CPU per list")
    if args.errors:
        _errors(rows, ranked)
    if args.recall:
        _recall(rows, ids, loaded, window)


def _rank_all(
    rows: list[dict[str, Any]],
    ids: dict[str, int],
    signals: dict[int, stories.ParentSignals],
    by_parent: dict[int, list[stories.Candidate]],
    idf: fr.Idf,
    window: int,
    *,
    own_outlet: bool = False,
) -> tuple[dict[str, list[str]], float]:
    """Every row's ranked row ids, and the ranking's CPU seconds per list (`own_outlet`: see
    the module docstring)."""
    by_article: dict[int, list[str]] = defaultdict(list)
    for row_id, article_id in ids.items():
        by_article[article_id].append(row_id)
    query = fr.RelatedQuery(first=50, window_days=window)
    if own_outlet:  # every item, the parent's outlet's after the others; re-sorted below
        query = fr.RelatedQuery(first=100_000, window_days=window, include_same_source=True)
    ranked: dict[str, list[str]] = {}
    lists: dict[int, list[int]] = {}
    start = time.process_time()
    for row in rows:
        p = ids[row["id"]]
        if p not in lists:
            items = fr.rank(signals[p], by_parent.get(p, []), query, idf)
            if own_outlet:  # by score alone, ties by id (`rank`'s order before its rules)
                items = sorted(items, key=lambda i: (-i.score, i.article_id))[:50]
            lists[p] = [i.article_id for i in items]
        ranked[row["id"]] = [r for a in lists[p] for r in by_article[a] if r != row["id"]]
    return ranked, (time.process_time() - start) / max(len(lists), 1)


def _ceilings_under_the_rule(rows: list[dict[str, Any]]) -> dict[str, tuple[float, int, int]]:
    """Per data set, the best R-precision a list can reach without the article's own outlet
    (the outlet each row is ingested with: `relevance.article_input`), and how many of the
    ordered same-event pairs share an outlet, of how many."""
    outlet = {r["id"]: article_input(r)["source"]["domain"] for r in rows}
    members: dict[str, list[str]] = defaultdict(list)
    for r in rows:
        members[r["cluster_id"]].append(r["id"])
    reach: dict[str, list[float]] = defaultdict(list)
    pairs: Counter[str] = Counter()
    shared: Counter[str] = Counter()
    for r in rows:
        mates = [m for m in members[r["cluster_id"]] if m != r["id"]]
        if not mates:
            continue
        limit = min(len(mates), 50)
        others = sum(outlet[m] != outlet[r["id"]] for m in mates)
        reach[r["dataset"]].append(min(others, limit) / limit)
        pairs[r["dataset"]] += len(mates)
        shared[r["dataset"]] += len(mates) - others
    return {d: (float(np.mean(v)), shared[d], pairs[d]) for d, v in sorted(reach.items())}


def _recall(rows: list[dict[str, Any]], ids: dict[str, int], loaded: Loaded, window: int) -> None:
    """ECB+: the cluster mates missing from each article's candidates, and the figures with
    them added as candidates (everything else as the service found it; `loaded`: `load`'s)."""
    signals, by_parent, idf = loaded
    members: dict[str, set[int]] = defaultdict(set)
    for r in rows:
        if r["dataset"] == "ecbplus":
            members[r["cluster_id"]].add(ids[r["id"]])
    completed = {p: list(found) for p, found in by_parent.items()}
    pairs = missing = 0
    for r in rows:
        if r["dataset"] != "ecbplus":
            continue
        p = ids[r["id"]]
        have = {c.article_id for c in completed.get(p, [])}
        mates = members[r["cluster_id"]] - {p}
        pairs += len(mates)
        for q in sorted(mates - have):
            missing += 1
            completed.setdefault(p, []).append(_as_candidate(p, q, signals[q]))
    ranked, _ = _rank_all(rows, ids, signals, completed, idf, window)
    e = scores(rows, ranked)["ecbplus"]
    print(
        f"ecbplus: {missing} of {pairs} cluster-mate pairs missing from the candidates; "
        f"with them added {e['P@1']:.3f} / {e['R-prec']:.3f} / {e['AP@R']:.3f}, "
        f"HN@5 {e['HN@5']:.3f}"
    )


def _errors(rows: list[dict[str, Any]], ranked: dict[str, list[str]]) -> None:
    """ECB+: what the wrong items of each top R are, and the cluster mates not listed."""
    by_id = {r["id"]: r for r in rows}
    ecb = [r for r in rows if r["dataset"] == "ecbplus"]
    members: dict[str, set[str]] = defaultdict(set)
    for r in ecb:
        members[r["cluster_id"]].add(r["id"])
    kinds: Counter[str] = Counter()
    for r in ecb:
        mates = members[r["cluster_id"]] - {r["id"]}
        for other in ranked[r["id"]][: min(len(mates), 50)]:
            o = by_id[other]
            if o["cluster_id"] != r["cluster_id"]:
                same_topic = o.get("topic_id") == r["topic_id"]
                kinds["same topic, other event" if same_topic else "other topic"] += 1
        kinds["cluster mates not in the top 50"] += len(mates - set(ranked[r["id"]]))
    print("ecbplus, wrong items in the top R and mates missed:", dict(kinds))


if __name__ == "__main__":
    main()
