"""Autocomplete latency at the statement level, over texts sampled from the catalogue.

`python bench/autocomplete.py --dsn URL [--texts 400] [--seed 1]`: takes entity names from a
sample of the catalogue, cuts a word of each to 2-6 characters, runs the service's own
autocomplete (`service.db.entities.list_entities`, first 9) once per text through a real pool
with the service's session settings, and prints p50/p90/p99/max (ms) and the slowest texts.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time

from service.config import Settings
from service.db.entities import list_entities
from service.db.pool import open_database


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings.from_environ({"DATABASE_URL": args.dsn})
    rng = random.Random(args.seed)
    async with open_database(settings) as db:
        rows = await db.fetch(
            "SELECT name FROM entities TABLESAMPLE SYSTEM (0.1) REPEATABLE ($1) LIMIT $2",
            args.seed,
            args.texts,
        )
        timings: list[tuple[float, str]] = []
        for row in rows:
            word = rng.choice(str(row["name"]).split())
            text = word[: rng.randint(2, 6)]
            start = time.perf_counter()
            await list_entities(db, search=text, kind=None, after=None, limit=9)
            timings.append(((time.perf_counter() - start) * 1000, text))
    timings.sort()
    ms = [t for t, _ in timings]

    def at(q: float) -> float:
        return ms[min(len(ms) - 1, int(len(ms) * q))]

    print(f"texts {len(ms)}  p50 {at(0.5):.1f} ms  p90 {at(0.9):.1f} ms  p99 {at(0.99):.1f} ms"
          f"  max {ms[-1]:.1f} ms")  # fmt: skip
    print("slowest:", ", ".join(f"{text!r} {t:.0f} ms" for t, text in timings[-8:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dsn", required=True)
    parser.add_argument("--texts", type=int, default=400)
    parser.add_argument("--seed", type=int, default=1)
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
