"""Bounded soak: a steady request rate against `newsgraph serve` on loopback, for minutes.

    python bench/soak.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_soak --rps 40
    python bench/soak.py --dsn ... --minutes 1            # a quick run
    python bench/soak.py --dsn ... --rps 0                # measure capacity, soak at half

Starts `newsgraph serve --migrate` (one worker, DATABASE_URL=--dsn, `--demo` with --demo) on a
free 127.0.0.1 port, waits for /readyz, draws variables from the database (entity slugs, source
domains, article ids, title words), then for --minutes (default 10) starts requests at --rps
per second (open loop; at most --concurrency in flight): the operations of schema/operations/
in turn, and every --ingest-every-th request an NDJSON ingest of 5 articles (new ones, and
repeats that come back UNCHANGED). With --rps 0 it first runs 15 s closed-loop at full
--concurrency and then soaks at half the rate measured.

Every minute it prints requests, errors, p50/p95/p99/max latency and the server's RSS; at the
end the totals, the RSS after the first minute and at the end (growth %), and a JSON line.
Exits 1 on any error or RSS growth over --max-rss-growth percent. Traffic goes to 127.0.0.1
only; the server is stopped (SIGTERM) at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import httpx
import orjson

from service.ids import encode_id

OPERATIONS_DIR: Final = Path(__file__).resolve().parents[1] / "schema" / "operations"
READY_TIMEOUT: Final = 180.0
CAPACITY_PROBE: Final = 15.0


@dataclass(slots=True)
class Window:
    """The requests of one minute."""

    latencies: list[float] = field(default_factory=list)  # ms, successes
    errors: list[str] = field(default_factory=list)

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return 0.0
        return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _newsgraph() -> list[str]:
    script = Path(sys.executable).with_name("newsgraph")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


@contextlib.contextmanager
def server(dsn: str, port: int, demo: bool) -> Iterator[tuple[subprocess.Popen[bytes], Path]]:
    log = Path(tempfile.mkstemp(prefix="newsgraph-soak-", suffix=".log")[1])
    args = [*_newsgraph(), "serve", "--port", str(port), "--migrate", *(["--demo"] * demo)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            args,
            # The soak measures the service, not its rate limiter (unless told otherwise).
            env={
                "NEWSGRAPH_RATE_LIMIT_ANONYMOUS": "0",
                **os.environ,
                "DATABASE_URL": dsn,
                "NEWSGRAPH_WORKERS": "1",
            },
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield proc, log
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()


class Traffic:
    """The next request to send: operation documents with variables drawn from the data."""

    def __init__(self, data: dict[str, list[Any]], ingest_every: int, seed: int) -> None:
        self.documents = {
            path.stem: path.read_text(encoding="utf-8")
            for path in sorted(OPERATIONS_DIR.glob("*.graphql"))
        }
        self.data = data
        self.ingest_every = ingest_every
        self.random = random.Random(seed)
        self.run = uuid.uuid4().hex[:8]
        self.counter = itertools.count()
        self.ingested = 0

    def _variables(self, name: str) -> dict[str, Any]:
        pick = self.random.choice
        if name == "article_page":
            return {"id": encode_id("Article", pick(self.data["articles"]))}
        if name == "entity_page":
            return {"slug": pick(self.data["slugs"]), "first": 10}
        if name == "source_page":
            return {"domain": pick(self.data["domains"]), "first": 10}
        if name == "search":
            return {"text": pick(self.data["words"]), "first": 10}
        if name == "autocomplete":
            word = pick(self.data["names"])
            return {"text": word[: self.random.randint(2, min(6, len(word)))]}
        return {"first": 20}  # feed

    def next(self) -> tuple[str, str, bytes, dict[str, str]]:
        """(label, path, body, headers) of the next request."""
        n = next(self.counter)
        if self.ingest_every and n % self.ingest_every == self.ingest_every - 1:
            lines = []
            for _ in range(5):
                # Every third article is one sent before: it comes back UNCHANGED.
                key = self.random.randrange(self.ingested) if self.ingested and n % 3 == 0 else None
                if key is None:
                    key, self.ingested = self.ingested, self.ingested + 1
                lines.append(
                    orjson.dumps(
                        {
                            "url": f"https://soak.example/{self.run}/{key}",
                            "title": f"Soak test article {key}",
                            "summary": "A steady stream of news about the soak test.",
                            "publishedAt": "2024-06-01T12:00:00Z",
                            "language": "en",
                            "source": {"domain": "soak.example", "name": "Soak Wire"},
                        }
                    )
                )
            body = b"\n".join(lines) + b"\n"
            return "ingest", "/v1/ingest", body, {"content-type": "application/x-ndjson"}
        name = list(self.documents)[n % len(self.documents)]
        body = orjson.dumps({"query": self.documents[name], "variables": self._variables(name)})
        return name, "/graphql", body, {"content-type": "application/json"}


async def _one(http: httpx.AsyncClient, traffic: Traffic, window: Window) -> None:
    label, path, body, headers = traffic.next()
    started = time.perf_counter()
    try:
        response = await http.post(path, content=body, headers=headers)
        elapsed = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            window.errors.append(f"{label}: HTTP {response.status_code} {response.text[:200]}")
        elif label == "ingest":
            lines = [orjson.loads(line) for line in response.content.splitlines()]
            bad = [ln for ln in lines if "error" in ln or ln.get("status") == "REJECTED"]
            if bad or len(lines) != 5:
                window.errors.append(f"ingest: {bad or lines}"[:300])
            else:
                window.latencies.append(elapsed)
        elif response.json().get("errors"):
            window.errors.append(f"{label}: {response.json()['errors']}"[:300])
        else:
            window.latencies.append(elapsed)
    except httpx.HTTPError as exc:
        window.errors.append(f"{label}: {type(exc).__name__} {exc}")


async def capacity(http: httpx.AsyncClient, traffic: Traffic, concurrency: int) -> float:
    """Requests per second at full concurrency (closed loop), measured for a few seconds."""
    window = Window()
    deadline = time.monotonic() + CAPACITY_PROBE

    async def worker() -> None:
        while time.monotonic() < deadline:
            await _one(http, traffic, window)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = len(window.latencies) + len(window.errors)
    return done / CAPACITY_PROBE


async def soak(
    http: httpx.AsyncClient, traffic: Traffic, args: argparse.Namespace, pid: int, rps: float
) -> tuple[list[Window], list[int]]:
    windows: list[Window] = []
    rss = [_rss_kib(pid)]
    slots = asyncio.Semaphore(args.concurrency)
    tasks: set[asyncio.Task[None]] = set()
    interval = 1 / rps
    started = time.monotonic()
    for minute in range(args.minutes):
        window = Window()
        windows.append(window)
        end = started + 60 * (minute + 1)
        next_at = time.monotonic()
        while next_at < end:
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            next_at += interval
            await slots.acquire()

            async def run(window: Window = window) -> None:
                try:
                    await _one(http, traffic, window)
                finally:
                    slots.release()

            task = asyncio.create_task(run())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.gather(*tasks)
        rss.append(_rss_kib(pid))
        total = len(window.latencies) + len(window.errors)
        print(
            f"minute {minute + 1:3d}: {total:6d} requests {len(window.errors):4d} errors"
            f"  p50 {window.percentile(50):7.1f}  p95 {window.percentile(95):7.1f}"
            f"  p99 {window.percentile(99):7.1f}  max {window.percentile(100):7.1f} ms"
            f"  rss {rss[-1] / 1024:7.1f} MiB",
            flush=True,
        )
        for error in window.errors[:3]:
            print(f"    {error}", flush=True)
    return windows, rss


async def draw(dsn: str) -> dict[str, list[Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        slugs = await conn.fetch(
            "SELECT slug, name FROM entities WHERE article_count > 0"
            " ORDER BY article_count DESC, id LIMIT 300"
        )
        domains = await conn.fetch("SELECT domain FROM sources ORDER BY id LIMIT 300")
        articles = await conn.fetch("SELECT id, title FROM articles ORDER BY id DESC LIMIT 1000")
    finally:
        await conn.close()
    words = sorted({w.lower() for r in articles for w in (r["title"] or "").split() if len(w) > 4})
    data = {
        "slugs": [r["slug"] for r in slugs],
        "names": [r["name"] for r in slugs],
        "domains": [r["domain"] for r in domains],
        "articles": [r["id"] for r in articles],
        "words": words[:500],
    }
    empty = [k for k, v in data.items() if not v]
    if empty:
        raise SystemExit(f"the database has no {', '.join(empty)}: load data first (--demo)")
    return data


async def main_async(args: argparse.Namespace) -> int:
    port = args.port or _free_port()
    with server(args.dsn, port, args.demo) as (proc, log):
        limits = httpx.Limits(max_connections=args.concurrency)
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{port}", timeout=30, limits=limits
        ) as http:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                if proc.poll() is not None:
                    print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                    return 2
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    print("the server did not become ready", file=sys.stderr)
                    return 2
                await asyncio.sleep(0.5)
            traffic = Traffic(await draw(args.dsn), args.ingest_every, args.seed)
            rps = args.rps
            if rps <= 0:
                measured = await capacity(http, traffic, args.concurrency)
                rps = measured / 2
                print(f"capacity {measured:.0f} requests/s; soaking at {rps:.0f}/s", flush=True)
            print(
                f"soak: {args.minutes} min at {rps:.0f} requests/s, at most {args.concurrency}"
                f" in flight, server pid {proc.pid}, log {log}",
                flush=True,
            )
            windows, rss = await soak(http, traffic, args, proc.pid, rps)
    latencies = sorted(x for w in windows for x in w.latencies)
    errors = sum(len(w.errors) for w in windows)
    total = len(latencies) + errors
    overall = Window(latencies=latencies)
    # The first minute warms caches (linker, statements, validation): growth is measured after.
    baseline = rss[1] if len(rss) > 2 else rss[0]
    growth = (rss[-1] - baseline) / baseline * 100 if baseline else 0.0
    summary = {
        "minutes": args.minutes,
        "target_rps": round(rps, 1),
        "achieved_rps": round(total / (60 * args.minutes), 1),
        "requests": total,
        "errors": errors,
        "ingested_articles": traffic.ingested,
        "p50_ms": round(overall.percentile(50), 1),
        "p95_ms": round(overall.percentile(95), 1),
        "p99_ms": round(overall.percentile(99), 1),
        "max_ms": round(overall.percentile(100), 1),
        "rss_start_mib": round(rss[0] / 1024, 1),
        "rss_baseline_mib": round(baseline / 1024, 1),
        "rss_end_mib": round(rss[-1] / 1024, 1),
        "rss_growth_pct": round(growth, 1),
    }
    print(
        f"total: {total} requests, {errors} errors; p50 {summary['p50_ms']} p95"
        f" {summary['p95_ms']} p99 {summary['p99_ms']} max {summary['max_ms']} ms;"
        f" RSS {summary['rss_start_mib']} MiB at start, {summary['rss_baseline_mib']} after"
        f" minute 1, {summary['rss_end_mib']} at the end ({growth:+.1f} %)"
    )
    print(orjson.dumps(summary).decode())
    return 1 if errors or growth > args.max_rss_growth else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dsn", required=True, help="the database to serve (DATABASE_URL)")
    parser.add_argument("--rps", type=float, default=40, help="requests/s; 0: half capacity")
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight at most")
    parser.add_argument("--ingest-every", type=int, default=20, help="every Nth is an ingest")
    parser.add_argument("--max-rss-growth", type=float, default=10.0, help="percent")
    parser.add_argument("--demo", action="store_true", help="serve --demo (load the demo news)")
    parser.add_argument("--port", type=int, help="default: a free port")
    parser.add_argument("--seed", type=int, default=1)
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
