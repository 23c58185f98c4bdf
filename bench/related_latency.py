"""Server-side latency of relatedStories and of the article page with and without it.

Runs in process (the GraphQL schema over a real pool, no HTTP), one request at a time, on
articles that have related-stories signals (see bench/related_backfill.py), each article
getting every operation in a random order:

    python bench/related_latency.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench_i4

Prints p50/p90/p99 in ms for `relatedStories(first: 10)` alone (served from the stored lists
when valid, and ranked online by asking `windowDays: 31`, which no stored list answers), for
the ArticlePage operation (schema/operations/article_page.graphql) with and without its
relatedStories block on the general path, and for the compiled ArticlePage (one statement
with a valid stored list) and the same statement given no related items; then the ratio of
the article page with related stories to the one without (p50 and p99), on each path. Run
`newsgraph refresh-related` on the database first, or the stored lists are missing and
everything is ranked online; or, where that takes hours (1M articles), `--store-sample`
stores the lists of the sampled articles only, exactly as the refresher would.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import gc
import random
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Final

from service.config import Settings
from service.db import pages, related_lists
from service.db.pool import Database, open_database
from service.graphql.compiled import COMPILED
from service.graphql.context import make_context
from service.graphql.schema import build_schema
from service.ids import encode_id
from service.related.find_related import find_related
from service.related.lists import LIST_QUERY, list_rows

PAGE: Final = Path(__file__).resolve().parents[1] / "schema" / "operations" / "article_page.graphql"
RELATED: Final = """
query($id: ID!) { article(id: $id) { relatedStories(first: 10) {
  score article { id title source { name } } reasons { relation textSimilarity timeGapHours }
} } }"""


def _percentiles(values: list[float]) -> str:
    values = sorted(values)
    at = [values[min(int(len(values) * q), len(values) - 1)] for q in (0.5, 0.9, 0.99)]
    return " ".join(f"{v:6.1f}" for v in at)


async def store_sample(db: Database, ids: list[int]) -> None:
    """Store the lists of `ids` as the refresher would (the online ranking of now) and mark
    them valid (their refresh-log rows deleted): the stored-list path measured on a database
    whose other lists were never computed (all of them take hours at 1M articles)."""
    ids = sorted(set(ids))
    start = time.perf_counter()
    for offset in range(0, len(ids), 100):
        chunk = ids[offset : offset + 100]
        found = await find_related(db, chunk, LIST_QUERY)
        async with db.transaction() as w:
            gone = [i for i in chunk if i not in found]
            await related_lists.store_lists(w, list_rows(found), gone, None)
            await w.execute("DELETE FROM related_refresh WHERE article_id = ANY($1)", chunk)
    print(f"stored the lists of the {len(ids):,} sampled articles in "
          f"{time.perf_counter() - start:.0f} s")  # fmt: skip


async def run(dsn: str, requests: int, seed: int, sample_lists: bool) -> None:
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    page = PAGE.read_text()
    without = re.sub(r"\n    relatedStories\(first: 5\) \{.*?\n    \}", "", page, flags=re.S)
    assert without != page
    online = RELATED.replace(
        "relatedStories(first: 10)", "relatedStories(first: 10, windowDays: 31)"
    )
    operations = {"relatedStories(first: 10)": RELATED,
                  "relatedStories, ranked online": online, "article page": page,
                  "article page without related": without}  # fmt: skip
    compiled = next(op for op in COMPILED if op.stem == "article_page")
    schema = build_schema(settings)
    async with open_database(settings) as db:
        # REPEATABLE: the same articles for the same seed (on the same database).
        ids = [r["article_id"] for r in await db.fetch(
            "SELECT article_id FROM article_signals TABLESAMPLE SYSTEM (5) REPEATABLE ($1)"
            " LIMIT 20000", seed,
        )]  # fmt: skip
        rng = random.Random(seed)
        results: dict[str, list[float]] = {}
        picks = [rng.choice(ids) for _ in range(requests)]
        if sample_lists:
            await store_sample(db, picks)
        valid = len((await related_lists.fetch_valid_lists(db, ids, 1)).lists)
        print(f"{len(ids):,} articles sampled ({valid:,} with a valid stored list); "
              f"{requests} requests per operation (ms)")  # fmt: skip
        print(f"{'operation':32} {'p50':>6} {'p90':>6} {'p99':>6}")

        async def general(text: str, article_id: int) -> None:
            result = await schema.execute(
                text, variable_values={"id": encode_id("Article", article_id)},
                context_value=make_context(settings, db),
            )  # fmt: skip
            assert result.errors is None, result.errors

        async def compiled_page(article_id: int) -> None:
            args = compiled.prepare({"id": encode_id("Article", article_id)}, settings)
            assert args is not None
            await compiled.run(db, args)

        async def compiled_without(article_id: int) -> None:
            # The same statement with no related items: the compiled page without them.
            await pages.article_page_json(db, article_id, "[]")

        runs: dict[str, Callable[[int], Awaitable[None]]] = {
            name: functools.partial(general, text) for name, text in operations.items()
        }
        runs["compiled article page"] = compiled_page
        runs["compiled, without related"] = compiled_without
        gc.freeze()  # as a server process does after start-up (service/app.py)
        # Warmed up (each pool connection prepares its statements once); then each article
        # gets every operation in a random order, so drift and caching hit them alike.
        for run_one in runs.values():
            for warm in picks[:10]:
                await run_one(warm)
        spent: dict[str, list[float]] = {name: [] for name in runs}
        order = list(runs.items())
        for article_id in picks:
            rng.shuffle(order)
            for name, run_one in order:
                started = time.perf_counter()
                await run_one(article_id)
                spent[name].append((time.perf_counter() - started) * 1000)
        for name in runs:
            print(f"{name:32} {_percentiles(spent[name])}")
            results[name] = sorted(spent[name])
        for path, with_, without in (
            ("general path", "article page", "article page without related"),
            ("compiled", "compiled article page", "compiled, without related"),
        ):
            for q in (0.5, 0.99):
                at = min(int(requests * q), requests - 1)
                ratio = results[with_][at] / results[without][at]
                print(f"article page with / without related ({path}), p{q * 100:.0f}: {ratio:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--store-sample",
        action="store_true",
        help="first store the lists of the sampled articles only (instead of refresh-related)",
    )
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.requests, args.seed, args.store_sample))


if __name__ == "__main__":
    main()
