"""A longer Schemathesis campaign than the test suite's: REST and GraphQL, counting 5xx.

    python bench/fuzz.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_fuzz --examples 2000

Serves the app in process (schemathesis's ASGI client) over --dsn, which must be a scratch
database: it is migrated, loaded with the demo news, and written to by generated mutations
and ingests. Sends --examples generated requests to the REST API (/openapi.json, positive
and negative cases) and as many GraphQL operations (/graphql), random unless --seed is given.
A 5xx, or a GraphQL error coded INTERNAL_SERVER_ERROR, is a failure: each distinct one is
printed once. Prints the number of requests sent per face; exits 1 on any failure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import seed as seed_examples
from hypothesis import strategies as st
from schemathesis.generation import GenerationMode
from schemathesis.python.asgi import shutdown_lifespans

from service.app import create_app
from service.config import Settings
from service.db.migrate import upgrade
from service.db.pool import open_database
from service.demo import load_demo


def _ndjson(context: Any, value: Any) -> bytes:
    items = value if isinstance(value, list) else [value]
    return b"".join(json.dumps(item).encode() + b"\n" for item in items)


schemathesis.serializer("application/x-ndjson", "application/jsonl")(_ndjson)


def _server_error(response: Any) -> bool:
    if response.status_code >= 500:
        return True
    try:
        errors = response.json().get("errors") or []
    except (ValueError, AttributeError):
        return False
    return any((e.get("extensions") or {}).get("code") == "INTERNAL_SERVER_ERROR" for e in errors)


def campaign(
    name: str, strategy: st.SearchStrategy[Any], examples: int, seed: int | None
) -> tuple[int, dict[str, str]]:
    sent = 0
    failures: dict[str, str] = {}

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        nonlocal sent
        sent += 1
        response = case.call()
        if _server_error(response):
            key = f"{case.method} {case.formatted_path} {response.status_code}"
            failures.setdefault(key, f"{case.body!r:.400} -> {response.text[:400]}")

    if seed is not None:
        run = seed_examples(seed)(run)
    started = time.monotonic()
    run()
    print(
        f"{name}: {sent} generated requests in {time.monotonic() - started:.0f} s,"
        f" {len(failures)} distinct server errors",
        flush=True,
    )
    for key, detail in failures.items():
        print(f"  {key}: {detail}")
    return sent, failures


async def prepare(dsn: str) -> None:
    await asyncio.to_thread(upgrade, dsn)
    async with open_database(Settings.from_environ({"DATABASE_URL": dsn})) as db:
        await load_demo(db)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="a scratch database (it is written to)")
    parser.add_argument("--examples", type=int, default=1000, help="requests per face")
    parser.add_argument("--seed", type=int, help="default: random")
    args = parser.parse_args(argv)
    asyncio.run(prepare(args.dsn))
    app = create_app(
        Settings.from_environ({"DATABASE_URL": args.dsn, "NEWSGRAPH_RATE_LIMIT_ANONYMOUS": "0"})
    )
    try:
        rest = schemathesis.openapi.from_asgi("/openapi.json", app)
        graphql = schemathesis.graphql.from_asgi("/graphql", app)
        failed = 0
        for name, strategy in (
            ("REST", rest.as_strategy() | rest.as_strategy(GenerationMode.NEGATIVE)),
            ("GraphQL", graphql.as_strategy()),
        ):
            _, failures = campaign(name, strategy, args.examples, args.seed)
            failed += len(failures)
    finally:
        shutdown_lifespans()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
