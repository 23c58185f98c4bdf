"""Quality of relatedStories on labelled news, measured through the running service.

Ingests ../shared/data/clusters_dev.jsonl through the real pipeline (`ingest_batch`, what
`/v1/ingest` and `ingestArticles` run) into a scratch database, asks `relatedStories` for every
article through the GraphQL schema, and prints per dataset (never pooled) P@1, R-precision and
AP@R with R = min(cluster size - 1, 50), plus ECB+'s HN@5 (share of the top 5 from the same
topic but another event). A TF-IDF cosine baseline (scikit-learn, title + text) over the same
rows is printed alongside. Measuring caveats of ../shared/data/README.md are followed: UCI
items get one shared date, and ECB+ rows without URL or source get a synthetic one each.

    python bench/relevance.py [--server postgresql://postgres@127.0.0.1:5432/postgres]

Also prints what the ingest hook of related stories (text features, wire copies, clusters)
cost per article.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import numpy as np
import orjson
from sklearn.feature_extraction.text import TfidfVectorizer

import service.ingest.pipeline as pipeline
from service.config import Settings
from service.db.migrate import upgrade
from service.db.pool import open_database
from service.graphql.context import make_context
from service.graphql.schema import build_schema
from service.ids import decode_typed_id, encode_id
from service.related.indexer import drain

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "clusters_dev.jsonl"
SCRATCH = "newsgraph_relevance"
UCI_DATE = "2014-03-10T12:00:00Z"
QUERY = """
query($id: ID!, $first: Int!, $window: Int!, $same: Boolean!) {
  article(id: $id) {
    relatedStories(first: $first, windowDays: $window, includeSameSource: $same) {
      article { id }
    }
  }
}"""


def window_days(rows: Sequence[dict[str, Any]]) -> int:
    """A `windowDays` that holds every pair of the data. Rows without a date are dated at
    ingest, today, so the window runs from the data's earliest date to today: a fixed 7,300
    days (20 years) stopped covering ECB+'s 2005 rows in 2025 and dropped 76 of its 5,850
    same-cluster pairs from the candidates (R-precision 0.915 without them, 0.923 with)."""
    dates = [datetime.fromisoformat(r["published_at"]) for r in rows if r.get("published_at")]
    earliest = min((d if d.tzinfo else d.replace(tzinfo=UTC) for d in dates), default=None)
    return (datetime.now(UTC) - (earliest or datetime.now(UTC))).days + 2


def article_input(row: dict[str, Any]) -> dict[str, Any]:
    """The row as an ArticleInput; nothing in it says which data set it came from."""
    token = hashlib.blake2b(row["id"].encode(), digest_size=6).hexdigest()[:12]
    url = row.get("url") or f"https://site-{token}.example/article"
    source = row.get("source")
    domain = (urlsplit(url).hostname or "").removeprefix("www.")
    if not row.get("url") or not source:
        domain = f"site-{token}.example"
    item: dict[str, Any] = {
        "url": url,
        "title": row["title"].strip() or (row.get("text") or row["id"])[:120],
        "body": row.get("text") or None,
        "language": row.get("language") or "en",
        "source": {"domain": domain, "name": source or domain},
    }
    if row["dataset"] == "uci_news_aggregator":
        item["publishedAt"] = UCI_DATE  # crawl times would leak the labels
    elif row.get("published_at"):
        item["publishedAt"] = row["published_at"]
    return item


def scores(
    rows: Sequence[dict[str, Any]], ranked: dict[str, list[str]]
) -> dict[str, dict[str, float]]:
    by_id = {r["id"]: r for r in rows}
    size = Counter(r["cluster_id"] for r in rows)
    per: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    hn: dict[str, list[float]] = defaultdict(list)
    for row in rows:
        found = ranked.get(row["id"], [])
        cluster = row["cluster_id"]
        r = min(size[cluster] - 1, 50)
        if r < 1:
            continue
        relevant = [by_id[i]["cluster_id"] == cluster for i in found[:r]]
        hits, ap = 0, 0.0
        for k, good in enumerate(relevant, 1):
            if good:
                hits += 1
                ap += hits / k
        p1 = 1.0 if relevant and relevant[0] else 0.0
        per[row["dataset"]].append((p1, sum(relevant) / r, ap / r))
        if row.get("topic_id"):
            top = found[:5]
            near = [
                i for i in top
                if by_id[i].get("topic_id") == row["topic_id"] and by_id[i]["cluster_id"] != cluster
            ]  # fmt: skip
            hn[row["dataset"]].append(len(near) / 5)
    result = {}
    for dataset, values in sorted(per.items()):
        result[dataset] = {
            "P@1": statistics.fmean(v[0] for v in values),
            "R-prec": statistics.fmean(v[1] for v in values),
            "AP@R": statistics.fmean(v[2] for v in values),
        }
        if hn.get(dataset):
            result[dataset]["HN@5"] = statistics.fmean(hn[dataset])
    return result


def baseline(rows: Sequence[dict[str, Any]], **options: Any) -> dict[str, list[str]]:
    """TF-IDF cosine over title + text of all rows (scikit-learn, defaults unless given)."""
    texts = [f"{r['title']} {r.get('text') or ''}" for r in rows]
    matrix = TfidfVectorizer(**options).fit_transform(texts)
    similarity = (matrix @ matrix.T).toarray()
    np.fill_diagonal(similarity, -1.0)
    ranked = {}
    for i, row in enumerate(rows):
        order = np.argsort(-similarity[i], kind="stable")[:50]
        ranked[row["id"]] = [rows[j]["id"] for j in order]
    return ranked


async def service_ranking(
    server: str, rows: Sequence[dict[str, Any]], args: argparse.Namespace
) -> tuple[dict[str, list[str]], dict[str, float]]:
    scratch = args.scratch
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{scratch}"')
    finally:
        await admin.close()
    dsn = f"{server.rpartition('/')[0]}/{scratch}"
    await asyncio.to_thread(upgrade, dsn)
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    spent: list[float] = []
    counted: list[int] = []
    figures: dict[str, float] = {}
    try:
        async with open_database(settings) as db:
            ids: dict[str, int] = {}
            start = time.perf_counter()
            for offset in range(0, len(rows), args.batch):
                chunk = rows[offset : offset + args.batch]
                results = await pipeline.ingest_batch(db, [article_input(r) for r in chunk])
                # Indexed after each batch (what the servers' indexers do within seconds).
                begun = time.perf_counter()
                counted.append(await drain(db))
                spent.append(time.perf_counter() - begun)
                for row, result in zip(chunk, results, strict=True):
                    assert result.article_id is not None, result
                    ids[row["id"]] = result.article_id
            figures["ingest_s"] = time.perf_counter() - start
            if args.ids_out:
                args.ids_out.write_bytes(orjson.dumps(ids))
            figures["hook_us_per_article"] = sum(spent) / max(sum(counted), 1) * 1e6
            by_article = defaultdict(list)
            for row_id, article_id in ids.items():
                by_article[article_id].append(row_id)
            schema = build_schema(settings)
            ranked: dict[str, list[str]] = {}
            latencies: list[float] = []
            for row in rows:
                context = make_context(settings, db)
                start = time.perf_counter()
                answer = await schema.execute(
                    QUERY,
                    variable_values={
                        "id": encode_id("Article", ids[row["id"]]), "first": 50,
                        "window": args.window_days, "same": args.same_source,
                    },
                    context_value=context,
                )  # fmt: skip
                latencies.append(time.perf_counter() - start)
                assert answer.errors is None, answer.errors
                assert answer.data is not None
                items = answer.data["article"]["relatedStories"]
                found = [decode_typed_id(i["article"]["id"], "Article") for i in items]
                ranked[row["id"]] = [r for a in found for r in by_article[a] if r != row["id"]]
            latencies.sort()
            figures["query_p50_ms"] = latencies[len(latencies) // 2] * 1000
            figures["query_p99_ms"] = latencies[int(len(latencies) * 0.99)] * 1000
            async with db.transaction() as w:
                figures["stories"] = await w.fetchval(
                    "SELECT count(*) FROM stories WHERE merged_into IS NULL"
                )
                figures["duplicates"] = await w.fetchval(
                    "SELECT count(*) FROM article_signals WHERE duplicate_of IS NOT NULL"
                )
    finally:
        if not args.keep:
            admin = await asyncpg.connect(server)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)')
            finally:
                await admin.close()
    return ranked, figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument(
        "--window-days", type=int, help="default: from the data's earliest date to today"
    )
    parser.add_argument("--batch", type=int, default=250)
    parser.add_argument("--same-source", action="store_true", help="includeSameSource: true")
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument(
        "--ids-out", type=Path, help="write row id -> article id (JSON) here (relevance_lab.py)"
    )
    parser.add_argument(
        "--scratch", default=SCRATCH, help="scratch database name (dropped and recreated)"
    )
    args = parser.parse_args()
    rows = [orjson.loads(line) for line in args.data.read_bytes().splitlines() if line.strip()]
    args.window_days = args.window_days or window_days(rows)
    ranked, figures = asyncio.run(service_ranking(args.server, rows, args))
    ours = scores(rows, ranked)
    base = scores(rows, baseline(rows))
    # The strongest variant we found: sublinear term frequencies, English stop words.
    tuned = scores(rows, baseline(rows, sublinear_tf=True, stop_words="english"))
    print(f"{'dataset':22} {'':9} {'P@1':>6} {'R-prec':>7} {'AP@R':>6} {'HN@5':>6}")
    for dataset in ours:
        for name, table in (("service", ours), ("tf-idf", base), ("tf-idf+", tuned)):
            m = table[dataset]
            hn = f"{m['HN@5']:6.3f}" if "HN@5" in m else ""
            print(f"{dataset:22} {name:9} {m['P@1']:6.3f} {m['R-prec']:7.3f} {m['AP@R']:6.3f} {hn}")
    print(
        f"ingest {len(rows)} articles: {figures['ingest_s']:.1f} s; related-stories indexing "
        f"{figures['hook_us_per_article']:.0f} µs/article; stories {figures['stories']:.0f}, "
        f"copies {figures['duplicates']:.0f}; relatedStories(first: 50) in process p50 "
        f"{figures['query_p50_ms']:.1f} ms, p99 {figures['query_p99_ms']:.1f} ms"
    )


if __name__ == "__main__":
    main()
