"""End-to-end latency of the client operations against `newsgraph serve` on a generated DB.

    python bench/latency.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench

Starts `newsgraph serve --port P` (one worker, DATABASE_URL=--dsn) as a subprocess, waits for
GET /readyz to answer 200, then per scenario sends --requests POST /graphql requests to
127.0.0.1 with --concurrency in flight, using the operation texts of schema/operations/ and
variables drawn from the data (bench/benchdata.py):

* feed          Feed, pages 1-10 (cursors collected first), a third filtered to 'nb'
* entity_page   EntityPage, half for the 20 most popular entities, half for random ones
* search        Search, common and rare terms, RELEVANCE (and every 4th NEWEST)
* autocomplete  Autocomplete, 2-6 character prefixes of real entity names and name words
* article_page  ArticlePage, random article ids
* source_page   SourcePage, random sources

Each scenario starts with a few unmeasured warm-up requests and stops taking new requests
after --scenario-timeout seconds. Every response must be HTTP 200 without `errors`.
Prints a fixed-width table (requests, errors, rps, p50/p90/p99/max in ms) and one JSON line
per scenario; exits 1 if any request failed. The server is stopped (SIGTERM) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import orjson
from benchdata import Picks, end_cursor, global_id, pick, schema_behind

OPERATIONS_DIR: Final = Path(__file__).resolve().parents[1] / "schema" / "operations"
SCENARIOS: Final = (
    "feed", "entity_page", "search", "autocomplete", "article_page", "source_page",
)  # fmt: skip
READY_TIMEOUT: Final = 180.0

Request = tuple[str, dict[str, object], str]  # operation name, variables, variant label


@dataclass(slots=True)
class Result:
    scenario: str
    latencies: list[float] = field(default_factory=list)  # ms, successful requests
    errors: int = 0
    first_error: str = ""
    seconds: float = 0.0
    aborted: bool = False
    variants: dict[str, list[float]] = field(default_factory=dict)  # label -> latencies
    variant_errors: dict[str, int] = field(default_factory=dict)
    app_cpu: float = 0.0  # seconds of CPU used by the server process during the scenario
    db_cpu: float = 0.0  # seconds of CPU used by its PostgreSQL backends

    def percentile(self, q: float, latencies: list[float] | None = None) -> float:
        ordered = sorted(self.latencies if latencies is None else latencies)
        if not ordered:
            return 0.0
        rank = max(1, round(q / 100 * len(ordered) + 0.4999))  # nearest rank
        return ordered[min(rank, len(ordered)) - 1]

    def variant_stats(self) -> dict[str, dict[str, float]]:
        return {
            label: {
                "requests": len(values) + self.variant_errors.get(label, 0),
                "errors": self.variant_errors.get(label, 0),
                "p50_ms": round(self.percentile(50, values), 2),
                "p99_ms": round(self.percentile(99, values), 2),
                "max_ms": round(max(values, default=0.0), 2),
            }
            for label, values in sorted(self.variants.items())
        }

    def as_json(self) -> dict[str, object]:
        done = len(self.latencies) + self.errors
        return {
            "scenario": self.scenario,
            "requests": done,
            "errors": self.errors,
            "rps": round(done / self.seconds, 1) if self.seconds else 0.0,
            "p50_ms": round(self.percentile(50), 2),
            "p90_ms": round(self.percentile(90), 2),
            "p99_ms": round(self.percentile(99), 2),
            "max_ms": round(max(self.latencies, default=0.0), 2),
            "app_cpu_ms_per_request": round(1000 * self.app_cpu / done, 2) if done else 0.0,
            "db_cpu_ms_per_request": round(1000 * self.db_cpu / done, 2) if done else 0.0,
            "aborted": self.aborted,
            "first_error": self.first_error or None,
            "variants": self.variant_stats(),
        }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (Linux /proc), 0 when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """CPU used by the server process and by the PostgreSQL backends of its pool."""

    def __init__(self, conn: asyncpg.Connection[Any], server_pid: int) -> None:
        self.conn = conn
        self.server_pid = server_pid
        self.start: dict[int, float] = {}

    async def _backends(self) -> list[int]:
        rows = await self.conn.fetch(
            "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'newsgraph-%'"
        )
        return [int(r["pid"]) for r in rows]

    async def begin(self) -> None:
        pids = [self.server_pid, *await self._backends()]
        self.start = {pid: _cpu_seconds(pid) for pid in pids}

    async def end(self, result: Result) -> None:
        result.app_cpu = _cpu_seconds(self.server_pid) - self.start.get(self.server_pid, 0.0)
        result.db_cpu = sum(
            _cpu_seconds(pid) - self.start.get(pid, 0.0) for pid in await self._backends()
        )


def _newsgraph() -> list[str]:
    script = Path(sys.executable).with_name("newsgraph")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "service.cli"]


@contextlib.contextmanager
def server(dsn: str, port: int) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    """`newsgraph serve` on 127.0.0.1:port; SIGTERM (then SIGKILL) on exit."""
    log = Path(tempfile.mkstemp(prefix="newsgraph-latency-", suffix=".log")[1])
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "NEWSGRAPH_WORKERS": "1",
        "NEWSGRAPH_HOST": "127.0.0.1",
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                *_newsgraph(),
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "1",
                "--migrate",
            ],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        print(f"server stopped (exit {proc.returncode}); log: {log}")


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


async def wait_ready(client: httpx.AsyncClient, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"newsgraph serve exited ({proc.returncode}):\n{_tail(log)}")
        with contextlib.suppress(httpx.TransportError):
            response = await client.get("/readyz")
            if response.status_code == 200:
                return
        await asyncio.sleep(0.25)
    raise SystemExit(f"/readyz not 200 after {READY_TIMEOUT:.0f}s:\n{_tail(log)}")


async def graphql(
    client: httpx.AsyncClient, operations: dict[str, str], request: Request
) -> dict[str, Any]:
    name, variables, _ = request
    response = await client.post(
        "/graphql",
        content=orjson.dumps({"query": operations[name], "variables": variables}),
        headers={"content-type": "application/json"},
    )
    if response.status_code != 200:
        return {"errors": [{"message": f"HTTP {response.status_code}: {response.text[:300]}"}]}
    body: dict[str, Any] = orjson.loads(response.content)
    return body


async def feed_pages(
    client: httpx.AsyncClient, operations: dict[str, str], languages: list[str] | None, pages: int
) -> list[dict[str, object]]:
    """Variables of the feed's first `pages` pages (each after the previous page's cursor)."""
    base: dict[str, object] = {"languages": languages} if languages else {}
    result = [dict(base)]
    while len(result) < pages:
        body = await graphql(client, operations, ("feed", result[-1], ""))
        cursor = end_cursor(body.get("data"))
        if cursor is None or body.get("errors"):
            break
        result.append({**base, "after": cursor})
    return result


async def build_requests(
    client: httpx.AsyncClient, operations: dict[str, str], picks: Picks, seed: int
) -> dict[str, Callable[[int], Request]]:
    rng = random.Random(seed)
    pages = await feed_pages(client, operations, None, 10)
    nb_pages = await feed_pages(client, operations, ["nb"], 10)
    popular = picks.top_entities[:20]
    terms = [(t, "common") for t in picks.common_terms] + [(t, "rare") for t in picks.rare_terms]
    article_ids = picks.article_ids

    def feed(i: int) -> Request:
        nb = i % 3 == 2
        return ("feed", rng.choice(nb_pages if nb else pages), "nb" if nb else "all")

    def entity_page(i: int) -> Request:
        popular_one = i % 2 == 0
        entity = rng.choice(popular) if popular_one else rng.choice(picks.entities)
        return ("entity_page", {"slug": entity.slug}, "popular" if popular_one else "random")

    def search(i: int) -> Request:
        term, kind = terms[i % len(terms)] if i % 2 == 0 else rng.choice(terms)
        variables: dict[str, object] = {"text": term}
        order = "relevance"
        if i % 4 == 3:
            variables["orderBy"] = "NEWEST"
            order = "newest"
        return ("search", variables, f"{kind} {order}")

    def autocomplete(i: int) -> Request:
        prefix = rng.choice(picks.prefixes)
        return ("autocomplete", {"text": prefix}, f"{len(prefix)} chars")

    def article_page(i: int) -> Request:
        return ("article_page", {"id": global_id("Article", rng.choice(article_ids))}, "")

    def source_page(i: int) -> Request:
        return ("source_page", {"domain": rng.choice(picks.sources).domain}, "")

    return {
        "feed": feed,
        "entity_page": entity_page,
        "search": search,
        "autocomplete": autocomplete,
        "article_page": article_page,
        "source_page": source_page,
    }


async def run_scenario(
    client: httpx.AsyncClient,
    operations: dict[str, str],
    name: str,
    make: Callable[[int], Request],
    *,
    requests: int,
    concurrency: int,
    time_limit: float,
) -> Result:
    result = Result(name)
    warmup = min(20, max(concurrency, requests // 10))
    for i in range(warmup):
        await graphql(client, operations, make(-1 - i))
    plan = [make(i) for i in range(requests)]
    next_index = 0
    deadline = time.monotonic() + time_limit

    async def worker() -> None:
        nonlocal next_index
        while next_index < len(plan):
            if time.monotonic() > deadline:
                result.aborted = True
                return
            request = plan[next_index]
            next_index += 1
            started = time.perf_counter()
            try:
                body = await graphql(client, operations, request)
            except httpx.HTTPError as exc:
                body = {"errors": [{"message": f"{type(exc).__name__}: {exc}"}]}
            elapsed = (time.perf_counter() - started) * 1000
            errors = body.get("errors")
            label = request[2]
            if errors or body.get("data") is None:
                result.errors += 1
                result.variant_errors[label] = result.variant_errors.get(label, 0) + 1
                result.variants.setdefault(label, [])
                if not result.first_error:
                    result.first_error = f"{request[:2]}: {str(errors)[:400]}"
            else:
                result.latencies.append(elapsed)
                result.variants.setdefault(label, []).append(elapsed)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


def print_table(results: list[Result]) -> None:
    header = (
        f"{'scenario':<14} {'requests':>8} {'errors':>6} {'rps':>8} "
        f"{'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'app cpu/req':>11} {'db cpu/req':>10}"
    )
    print("\n" + header)
    print("-" * len(header))
    for r in results:
        j = r.as_json()
        print(
            f"{r.scenario:<14} {j['requests']:>8} {j['errors']:>6} {j['rps']:>8.1f} "
            f"{j['p50_ms']:>8.1f} {j['p90_ms']:>8.1f} {j['p99_ms']:>8.1f} {j['max_ms']:>8.1f} "
            f"{j['app_cpu_ms_per_request']:>11.1f} {j['db_cpu_ms_per_request']:>10.1f}"
            + ("  (aborted at the time limit)" if r.aborted else "")
        )
        if len(r.variants) > 1:
            for label, v in r.variant_stats().items():
                print(
                    f"  {label:<16} {v['requests']:>6.0f} {v['errors']:>6.0f} {'':>8} "
                    f"{v['p50_ms']:>8.1f} {'':>8} {v['p99_ms']:>8.1f} {v['max_ms']:>8.1f}"
                )
    print()
    for r in results:
        print(orjson.dumps(r.as_json()).decode())


async def main_async(args: argparse.Namespace) -> int:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(args.dsn)
    try:
        behind = await schema_behind(conn)
        if behind:
            print(f"note: {behind}; `newsgraph serve` migrates it first (may take a while)")
        picks = await pick(conn, seed=args.seed, samples=max(200, args.requests))
        return await _run(args, conn, picks)
    finally:
        await conn.close()


async def _run(args: argparse.Namespace, conn: asyncpg.Connection[Any], picks: Picks) -> int:
    operations = {p.stem: p.read_text(encoding="utf-8") for p in OPERATIONS_DIR.glob("*.graphql")}
    chosen = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; choose from {SCENARIOS}")
    results: list[Result] = []
    with server(args.dsn, args.port) as (proc, log):
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=64)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{args.port}",
            timeout=httpx.Timeout(30.0),
            limits=limits,
            trust_env=False,
        ) as client:
            await wait_ready(client, proc, log)
            print(f"server ready on 127.0.0.1:{args.port} (pid {proc.pid})", flush=True)
            makers = await build_requests(client, operations, picks, args.seed)
            meter = CpuMeter(conn, proc.pid)
            for name in chosen:
                await meter.begin()
                result = await run_scenario(
                    client,
                    operations,
                    name,
                    makers[name],
                    requests=args.requests,
                    concurrency=args.concurrency,
                    time_limit=args.scenario_timeout,
                )
                await meter.end(result)
                j = result.as_json()
                print(
                    f"{name:<14} {j['requests']} requests in {result.seconds:.1f}s, "
                    f"p50 {j['p50_ms']} ms, p99 {j['p99_ms']} ms, errors {j['errors']}",
                    flush=True,
                )
                if result.first_error:
                    print(f"  first error: {result.first_error}")
                results.append(result)
    print_table(results)
    one, five, _ = os.getloadavg()
    print(f"load average at the end: {one:.2f} (1 min), {five:.2f} (5 min); {os.cpu_count()} cores")
    return 1 if any(r.errors for r in results) else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Latency of the operations, end to end.")
    parser.add_argument("--dsn", required=True, help="postgresql://... of a generated database")
    parser.add_argument("--requests", type=int, default=300, help="per scenario (300)")
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight (8)")
    parser.add_argument("--port", type=int, default=8765, help="port for the server (8765)")
    parser.add_argument("--seed", type=int, default=1, help="variables sampling seed (1)")
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated subset, in order"
    )
    parser.add_argument(
        "--scenario-timeout", type=float, default=60.0, help="seconds per scenario (60)"
    )
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
