"""CPU per GraphQL request with and without the parsed-document cache (`ParsedDocuments`).

    .venv/bin/python bench/document_cache.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench

Runs the ArticlePage and Feed operations (schema/operations) in process through the real
schema over a real pool, one request at a time, alternating a schema with the cache and one
without it for --rounds rounds (the first round only warms up), and prints this process's
CPU per request for each: the parse of the document, and what downstream caches spend on a
freshly parsed document (validation is cached by document, so a new one is hashed and
compared), are the difference.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import time
from pathlib import Path
from typing import Any
from unittest import mock

import strawberry
from strawberry.extensions import SchemaExtension

from service.config import Settings
from service.db.pool import Database, open_database
from service.graphql import schema as schema_module
from service.graphql.context import make_context
from service.ids import encode_id

OPERATIONS = Path(__file__).resolve().parents[1] / "schema" / "operations"


class _NoCache(SchemaExtension):
    """Stands in for `ParsedDocuments`: every request parses its document."""


async def run(dsn: str, requests: int, rounds: int) -> None:
    settings = Settings.from_environ({"DATABASE_URL": dsn, "NEWSGRAPH_DATA_DIR": "/nonexistent"})
    cached = schema_module.build_schema(settings)
    with mock.patch.object(schema_module, "ParsedDocuments", _NoCache):
        uncached = schema_module.build_schema(settings)
    page = (OPERATIONS / "article_page.graphql").read_text()
    feed = (OPERATIONS / "feed.graphql").read_text()
    async with open_database(settings) as db:
        rows = await db.fetch("SELECT id FROM articles ORDER BY id DESC LIMIT $1", requests)
        work: list[tuple[str, str, dict[str, Any]]] = [
            ("ArticlePage", page, {"id": encode_id("Article", r["id"])}) for r in rows
        ]
        work += [("Feed", feed, {"first": 20})] * requests
        gc.freeze()  # as a server does after start-up
        spent: dict[tuple[str, str], list[float]] = {}
        for rnd in range(rounds):
            for label, schema in (("without cache", uncached), ("with cache", cached)):
                for name in ("ArticlePage", "Feed"):
                    jobs = [w for w in work if w[0] == name]
                    cpu = time.process_time()
                    for _, document, variables in jobs:
                        await _execute(schema, document, variables, settings, db)
                    if rnd:
                        per = (time.process_time() - cpu) / len(jobs) * 1000
                        spent.setdefault((name, label), []).append(per)
    for (name, label), values in spent.items():
        figures = ", ".join(f"{v:.2f}" for v in values)
        print(f"{name:12} {label:14} {figures} ms CPU per request")


async def _execute(
    schema: strawberry.Schema,
    document: str,
    variables: dict[str, Any],
    settings: Settings,
    db: Database,
) -> None:
    result = await schema.execute(
        document, variable_values=variables, context_value=make_context(settings, db)
    )
    assert not result.errors, result.errors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/newsgraph_bench")
    parser.add_argument("--requests", type=int, default=300, help="per operation and round")
    parser.add_argument("--rounds", type=int, default=3, help="the first one warms up")
    args = parser.parse_args()
    asyncio.run(run(args.dsn, args.requests, args.rounds))


if __name__ == "__main__":
    main()
