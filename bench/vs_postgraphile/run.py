"""Newsgraph against PostGraphile v5 on the same database and machine, side by side.

    .venv/bin/python bench/vs_postgraphile/run.py            # ~30 min: 3 rounds x 20 s per cell
    .venv/bin/python bench/vs_postgraphile/run.py --rounds 1 --seconds 5   # a quick look

Builds (or reuses) a benchmark database with bench/generate.py, adds the computed columns
PostGraphile needs (postgraphile.sql), installs PostGraphile v5 and Node 22 from npm into a
cache directory and wrk from Debian when missing, then for 1 and 2 processes per server
starts PostGraphile (library mode under Node's cluster module) and `newsgraph serve
--workers N` (no response cache), both with `--pool` database connections per process (3),
and loads them with wrk at each concurrency, alternating
servers, round after round. Prints rps, p50, p99, server CPU ms per request (from /proc of
the server's processes), SQL statements per request (pg_stat_database transactions during a
calibration phase) and the ratio to PostGraphile (median and range over rounds); writes
bench/results/vs_postgraphile.json and a chart (PNG, with matplotlib from the `bench`
extra). Loopback only; every server it starts is stopped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg

HERE: Final = Path(__file__).resolve().parent
ROOT: Final = HERE.parent.parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(ROOT))

from benchdata import global_id, pick  # noqa: E402

from service.db.migrate import upgrade  # noqa: E402

OPERATIONS: Final = ROOT / "schema" / "operations"
QUERIES: Final = ("feed", "entity_page", "article_page", "search")
COMPARED: Final = ("feed", "entity_page", "article_page")  # search: ours only
NPM_PACKAGES: Final = ("node@22", "postgraphile@^5", "@graphile/simplify-inflection@^9")
TICKS: Final = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class Cell:
    server: str  # newsgraph | postgraphile | newsgraph-cached
    query: str
    workers: int
    concurrency: int
    round: int
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_request: float
    requests: int
    errors: int
    load: float


@dataclass(slots=True)
class Report:
    cells: list[Cell] = field(default_factory=list)
    statements: dict[str, float] = field(default_factory=dict)  # "server/query" -> per request
    settings: dict[str, Any] = field(default_factory=dict)


# --- tools ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    print("installing wrk (apt-get)…", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
    return shutil.which("wrk") or "wrk"


def ensure_postgraphile(node_dir: Path) -> Path:
    """Node 22 and PostGraphile v5 in `node_dir` (npm install once); the node binary."""
    node = node_dir / "node_modules" / ".bin" / "node"
    if not (node.exists() and (node_dir / "node_modules" / "postgraphile").exists()):
        node_dir.mkdir(parents=True, exist_ok=True)
        if not (node_dir / "package.json").exists():
            (node_dir / "package.json").write_text('{"name": "vs-postgraphile", "private": true}\n')
        print(f"installing {' '.join(NPM_PACKAGES)} into {node_dir}…", flush=True)
        subprocess.run(["npm", "install", "--no-fund", *NPM_PACKAGES], cwd=node_dir, check=True)
    for name in ("server.mjs", "graphile.config.mjs"):
        shutil.copy(HERE / name, node_dir / name)
    return node


# --- database ------------------------------------------------------------------------------


async def ensure_database(dsn: str, articles: int, regenerate: bool) -> None:
    count = 0
    with contextlib.suppress(OSError, asyncpg.PostgresError):
        conn = await asyncpg.connect(dsn)
        try:
            count = int(await conn.fetchval("SELECT count(*) FROM articles"))
        finally:
            await conn.close()
    if regenerate or count < articles:
        print(f"generating {articles:,} articles (bench/generate.py)…", flush=True)
        await asyncio.to_thread(
            subprocess.run,
            [
                sys.executable,
                str(HERE.parent / "generate.py"),
                "--dsn",
                dsn,
                "--create",
                "--articles",
                str(articles),
            ],
            check=True,
        )
    await asyncio.to_thread(upgrade, dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute((HERE / "postgraphile.sql").read_text())
        missing = await conn.fetchval(
            "SELECT count(*) FROM articles a "
            "WHERE NOT EXISTS (SELECT 1 FROM article_signals s WHERE s.article_id = a.id)"
        )
    finally:
        await conn.close()
    # The article page's relatedStories need the articles' related-story signals (ingest
    # computes them; generated rows have none) and their stored lists (what a running
    # service keeps up to date in the background).
    if missing:
        print(f"computing related-story signals of {missing:,} articles…", flush=True)
        await asyncio.to_thread(
            subprocess.run,
            [sys.executable, str(HERE.parent / "related_backfill.py"), "--dsn", dsn],
            check=True,
        )
    script = Path(sys.executable).with_name("newsgraph")
    await asyncio.to_thread(
        subprocess.run,
        [str(script), "refresh-related"],
        env={**os.environ, "DATABASE_URL": dsn, "NEWSGRAPH_LOG_FORMAT": "text"},
        check=True,
    )


async def build_bodies(dsn: str, seed: int) -> dict[str, dict[str, list[bytes]]]:
    """Request bodies per server and query, with variables drawn from the data."""
    conn = await asyncpg.connect(dsn)
    try:
        picks = await pick(conn, seed=seed)
        slugs = [e.slug for e in picks.top_entities] + [
            e.slug for e in picks.entities if e.article_count > 0
        ][:80]
    finally:
        await conn.close()
    rng = random.Random(seed)
    ids = list(picks.article_ids)
    rng.shuffle(ids)

    def body(text: str, variables: dict[str, Any]) -> bytes:
        return json.dumps({"query": text, "variables": variables}).encode()

    ours = {q: (OPERATIONS / f"{q}.graphql").read_text(encoding="utf-8") for q in QUERIES}
    theirs = {q: (HERE / "postgraphile" / f"{q}.graphql").read_text() for q in COMPARED}
    terms = picks.common_terms[:10] + picks.rare_terms[:10]
    return {
        "newsgraph": {
            "feed": [body(ours["feed"], {"first": 20})],
            "entity_page": [body(ours["entity_page"], {"slug": s, "first": 20}) for s in slugs],
            "article_page": [
                body(ours["article_page"], {"id": global_id("Article", i)}) for i in ids
            ],
            "search": [body(ours["search"], {"text": t, "first": 20}) for t in terms],
        },
        "postgraphile": {
            "feed": [body(theirs["feed"], {})],
            "entity_page": [body(theirs["entity_page"], {"slug": s}) for s in slugs],
            "article_page": [body(theirs["article_page"], {"id": str(i)}) for i in ids],
        },
    }


async def transactions(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database "
                "WHERE datname = current_database()"
            )
        )
    finally:
        await conn.close()


# --- servers -------------------------------------------------------------------------------


def _tree(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def cpu_seconds(root: int) -> float:
    """User + system CPU of a process and its descendants (live ones)."""
    total = 0
    for pid in _tree(root):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


@dataclass(slots=True)
class Server:
    name: str
    port: int
    proc: subprocess.Popen[bytes]
    log: Path


def _post(port: int, body: bytes, timeout: float = 10) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/graphql",
        data=body,
        headers={"content-type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=timeout) as answer:  # noqa: S310 - loopback
        result: dict[str, Any] = json.loads(answer.read())
        return result


def _wait_ready(server: Server, probe: bytes) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"{server.name} exited; log: {server.log}")
        try:
            if "data" in _post(server.port, probe, timeout=2):
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"{server.name} did not start; log: {server.log}")


@contextlib.contextmanager
def start(
    name: str, command: list[str], env: dict[str, str], port: int, cwd: Path
) -> Iterator[Server]:
    log = Path(tempfile.mkstemp(prefix=f"vs-pg-{name}-", suffix=".log")[1])
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env={**os.environ, **env}, cwd=cwd, stdout=out, stderr=subprocess.STDOUT
        )
    server = Server(name, port, proc, log)
    try:
        _wait_ready(server, b'{"query": "{ __typename }"}')
        yield server
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def newsgraph(
    dsn: str, port: int, workers: int, pool: int | None, *, cache: bool
) -> contextlib.AbstractContextManager[Server]:
    script = Path(sys.executable).with_name("newsgraph")
    command = [
        str(script) if script.exists() else sys.executable,
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    if not script.exists():
        command[1:1] = ["-m", "service.cli"]
    env = {"DATABASE_URL": dsn, "NEWSGRAPH_RESPONSE_CACHE": "true" if cache else "false"}
    if pool:
        env["NEWSGRAPH_POOL_MAX_SIZE"] = str(pool)
    return start("newsgraph-cached" if cache else "newsgraph", command, env, port, ROOT)


def postgraphile(
    node: Path, node_dir: Path, dsn: str, port: int, workers: int, pool: int | None
) -> contextlib.AbstractContextManager[Server]:
    env = {"PG_DSN": dsn, "PORT": str(port), "WORKERS": str(workers), "NODE_ENV": "production"}
    if pool:
        env["PG_POOL_MAX"] = str(pool)
    return start("postgraphile", [str(node), "server.mjs"], env, port, node_dir)


# --- load ----------------------------------------------------------------------------------


def wrk(
    binary: str, port: int, bodies: list[bytes], seconds: float, concurrency: int
) -> dict[str, int]:
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as file:
        file.write(b"\n".join(bodies) + b"\n")
    try:
        run = subprocess.run(
            [
                binary,
                "-t",
                "2",
                "-c",
                str(concurrency),
                "-d",
                f"{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                str(HERE / "post.lua"),
                f"http://127.0.0.1:{port}",
                "--",
                file.name,
            ],
            capture_output=True,
            text=True,
            check=True,
            timeout=seconds + 60,
        )
    finally:
        os.unlink(file.name)
    for line in run.stdout.splitlines():
        if line.startswith("RESULT "):
            result: dict[str, int] = json.loads(line.removeprefix("RESULT "))
            return result
    raise RuntimeError(f"wrk printed no result: {run.stdout}\n{run.stderr}")


def check_answers(server: Server, bodies: list[bytes], sample: int = 20) -> None:
    for body in bodies[:sample]:
        answer = _post(server.port, body)
        if answer.get("errors") or not answer.get("data"):
            raise RuntimeError(f"{server.name} answered with errors: {str(answer)[:500]}")


def measure(
    wrk_bin: str,
    server: Server,
    query: str,
    bodies: list[bytes],
    args: argparse.Namespace,
    workers: int,
    concurrency: int,
    round_: int,
) -> Cell:
    cpu_before = cpu_seconds(server.proc.pid)
    result = wrk(wrk_bin, server.port, bodies, args.seconds, concurrency)
    cpu = cpu_seconds(server.proc.pid) - cpu_before
    requests = max(result["requests"], 1)
    seconds = result["duration_us"] / 1e6
    cell = Cell(
        server=server.name,
        query=query,
        workers=workers,
        concurrency=concurrency,
        round=round_,
        rps=round(requests / seconds, 1),
        p50_ms=result["p50_us"] / 1000,
        p99_ms=result["p99_us"] / 1000,
        cpu_ms_per_request=round(cpu * 1000 / requests, 3),
        requests=requests,
        errors=result["errors"] + result["non_2xx"],
        load=os.getloadavg()[0],
    )
    print(
        f"  {cell.server:<17} {query:<13} w{workers} c{concurrency:<3} r{round_}  "
        f"{cell.rps:>8.1f} rps  p50 {cell.p50_ms:6.1f}  p99 {cell.p99_ms:6.1f} ms  "
        f"cpu {cell.cpu_ms_per_request:5.2f} ms/req  errors {cell.errors}  load {cell.load:.1f}",
        flush=True,
    )
    return cell


async def calibrate(
    dsn: str, server: Server, query: str, bodies: list[bytes], report: Report, n: int
) -> None:
    """Statements per request: database transactions over `n` sequential requests.

    Backends publish their counters at most once a second and when idle for 10 s: the
    counters are read after 11 s of quiet on both sides.
    """
    before = await transactions(dsn)
    for i in range(n):
        _post(server.port, bodies[i % len(bodies)])
    await asyncio.sleep(11)
    after = await transactions(dsn)
    # The first counter read is a transaction too (counted by the second).
    per_request = round((after - before - 1) / n, 2)
    report.statements[f"{server.name}/{query}"] = per_request
    print(f"  {server.name} {query}: {per_request} statements per request")


# --- output --------------------------------------------------------------------------------


def _median_range(values: list[float]) -> tuple[float, float, float]:
    return statistics.median(values), min(values), max(values)


def table(report: Report) -> str:
    lines = [
        "| query | processes | concurrency | server | rps | p50 ms | p99 ms | CPU ms/req | "
        "statements/req | rps ratio (median, range) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    keys = sorted(
        {(c.query, c.workers, c.concurrency) for c in report.cells},
        key=lambda k: (QUERIES.index(k[0]), k[1], k[2]),
    )
    for query, workers, concurrency in keys:
        by_server: dict[str, list[Cell]] = {}
        for c in report.cells:
            if (c.query, c.workers, c.concurrency) == (query, workers, concurrency):
                by_server.setdefault(c.server, []).append(c)
        theirs = {c.round: c.rps for c in by_server.get("postgraphile", [])}
        for server, cells in sorted(by_server.items(), key=lambda item: item[0] != "newsgraph"):
            rps, p50, p99 = (
                _median_range([getattr(c, f) for c in cells])[0]
                for f in ("rps", "p50_ms", "p99_ms")
            )
            cpu = statistics.median(c.cpu_ms_per_request for c in cells)
            ratio = "—"
            if server == "newsgraph" and theirs:
                ratios = [c.rps / theirs[c.round] for c in cells if theirs.get(c.round)]
                if ratios:
                    mid, low, high = _median_range(ratios)
                    ratio = f"{mid:.2f}× ({low:.2f}–{high:.2f})"
            statements = report.statements.get(f"{server.removesuffix('-cached')}/{query}")
            lines.append(
                f"| {query} | {workers} | {concurrency} | {server} | {rps:,.0f} | {p50:.1f} | "
                f"{p99:.1f} | {cpu:.2f} | {'—' if statements is None else statements} | "
                f"{ratio} |"
            )
    return "\n".join(lines)


def chart(report: Report, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no chart")
        return
    cells = [c for c in report.cells if c.server in ("newsgraph", "postgraphile")]
    groups = sorted(
        {(c.query, c.workers, c.concurrency) for c in cells},
        key=lambda k: (QUERIES.index(k[0]), k[1], k[2]),
    )
    labels = [f"{q}\n{w}p c{c}" for q, w, c in groups]
    fig, axes = plt.subplots(2, 1, figsize=(max(10, len(groups) * 0.9), 8), sharex=True)
    width = 0.4
    for offset, server, colour in (
        (-width / 2, "newsgraph", "#2a7ab9"),
        (width / 2, "postgraphile", "#d9822b"),
    ):
        for axis, metric in zip(axes, ("rps", "p99_ms"), strict=True):
            values = []
            for group in groups:
                found = [
                    getattr(c, metric)
                    for c in cells
                    if c.server == server and (c.query, c.workers, c.concurrency) == group
                ]
                values.append(statistics.median(found) if found else 0)
            axis.bar(
                [i + offset for i in range(len(groups))], values, width, label=server, color=colour
            )
    axes[0].set_ylabel("requests/s (median of rounds)")
    axes[1].set_ylabel("p99 latency, ms")
    axes[0].legend()
    axes[0].set_title("Newsgraph vs PostGraphile v5, same database and machine (uncached)")
    axes[1].set_xticks(range(len(groups)), labels, fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"chart: {path}")


# --- main ----------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> Report:
    report = Report(settings={k: v for k, v in vars(args).items() if k != "out"})
    wrk_bin = ensure_wrk()
    node = ensure_postgraphile(args.node_dir)
    await ensure_database(args.dsn, args.articles, args.generate)
    bodies = await build_bodies(args.dsn, args.seed)
    queries = [q for q in args.queries.split(",") if q]
    for workers in args.workers:
        print(f"\n== {workers} process(es) per server", flush=True)
        with (
            newsgraph(args.dsn, args.port, workers, args.pool, cache=False) as ours,
            postgraphile(
                node, args.node_dir, args.dsn, args.port + 1, workers, args.pool
            ) as theirs,
        ):
            servers = {"newsgraph": ours, "postgraphile": theirs}
            for name, server in servers.items():
                for query in queries:
                    if query in bodies[name]:
                        check_answers(server, bodies[name][query])
                        wrk(wrk_bin, server.port, bodies[name][query], args.warmup, 16)
            if args.calibrate and workers == args.workers[0]:
                await asyncio.sleep(11)
                for name, server in servers.items():
                    for query in queries:
                        if query in bodies[name]:
                            await calibrate(
                                args.dsn, server, query, bodies[name][query], report, args.calibrate
                            )
            for round_ in range(1, args.rounds + 1):
                order = ["newsgraph", "postgraphile"]
                if round_ % 2 == 0:
                    order.reverse()
                for query in queries:
                    for concurrency in args.concurrency:
                        for name in order:
                            if query in bodies[name]:
                                report.cells.append(
                                    measure(
                                        wrk_bin,
                                        servers[name],
                                        query,
                                        bodies[name][query],
                                        args,
                                        workers,
                                        concurrency,
                                        round_,
                                    )
                                )
        if args.cache_seconds and workers == args.workers[-1]:
            print("\n== response cache on (its own figure, not in the comparison)", flush=True)
            with newsgraph(args.dsn, args.port, workers, args.pool, cache=True) as cached:
                for query in ("feed", "entity_page"):
                    wrk(wrk_bin, cached.port, bodies["newsgraph"][query], args.warmup, 16)
                    for concurrency in args.concurrency:
                        cell_args = argparse.Namespace(
                            **{**vars(args), "seconds": args.cache_seconds}
                        )
                        report.cells.append(
                            measure(
                                wrk_bin,
                                cached,
                                query,
                                bodies["newsgraph"][query],
                                cell_args,
                                workers,
                                concurrency,
                                1,
                            )
                        )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", default="postgresql://postgres@127.0.0.1:5432/newsgraph_bench_pg")
    parser.add_argument("--articles", type=int, default=200_000)
    parser.add_argument("--generate", action="store_true", help="regenerate the database")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--cache-seconds", type=float, default=10, help="0: skip the cached run")
    parser.add_argument("--calibrate", type=int, default=200, help="requests; 0: skip")
    parser.add_argument(
        "--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[16, 64]
    )
    parser.add_argument("--workers", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    parser.add_argument("--queries", default=",".join(QUERIES))
    # Both servers and PostgreSQL share the machine's 2 cores: pools of 10 per process put up
    # to 20 runnable backends on them, and the time-sharing lengthens everyone's tail
    # (README: "Against PostGraphile v5"). 0: each server's own default (10 for both).
    parser.add_argument(
        "--pool", type=int, default=3, help="database connections per process, both servers"
    )
    parser.add_argument("--port", type=int, default=8771, help="ours; PostGraphile's is +1")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--node-dir",
        type=Path,
        default=Path("/var/tmp/newsgraph-vs-postgraphile"),  # noqa: S108 - a cache, not a secret
        help="where npm installs Node 22 and PostGraphile (outside the repository)",
    )
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    args = parser.parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the servers started so far are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    started = time.monotonic()
    report = asyncio.run(run(args))
    print(f"\n{table(report)}\n")
    print(
        f"{len(report.cells)} cells in {time.monotonic() - started:.0f} s; "
        f"load average now {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "vs_postgraphile.json").write_text(
        json.dumps(
            {
                "cells": [asdict(c) for c in report.cells],
                "statements": report.statements,
                "settings": report.settings,
            },
            indent=1,
            default=str,
        )
    )
    (args.out / "vs_postgraphile.md").write_text(table(report) + "\n")
    chart(report, args.out / "vs_postgraphile.png")
    return 1 if any(c.errors for c in report.cells) else 0


if __name__ == "__main__":
    raise SystemExit(main())
