"""EXPLAIN (ANALYZE, BUFFERS) every statement behind the client operations, on real data.

    python bench/explain.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench

Runs the operations of schema/operations/*.graphql in-process (the real strawberry schema and
db layer) against a recording `Database`, so each SQL statement is captured with its exact
arguments; then runs EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) of each. Cases: the feed (and
its second page), the Norwegian feed, entity pages of the most and the least popular entity,
source pages, search for a common and a rare term in RELEVANCE and NEWEST order,
autocomplete, article pages (with each entity's latest articles), co-mentions. Parameters come
from the data (bench/benchdata.py).

Per statement it prints the execution and planning time, buffers (hit/read), rows and the plan
as a compact tree of node types. It also probes the plan cache the way the service's asyncpg
statement cache meets it: the statement is prepared and run 8 times; when PostgreSQL switches
to a generic plan, that plan is captured (auto_explain) and checked too.

Exits 1 when a plan that the service would run contains a Seq Scan on a large table
(articles, article_entities, entities, entity_aliases); statements slower than --slow-ms are
listed as warnings.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import asyncpg
import orjson
from benchdata import Picks, end_cursor, global_id, pick, schema_behind

from service.config import Settings
from service.db import articles, entities, sources
from service.db.pool import SESSION_SETTINGS, Database
from service.graphql import build_schema, make_context

LARGE_TABLES: Final = frozenset({"articles", "article_entities", "entities", "entity_aliases"})
OPERATIONS_DIR: Final = Path(__file__).resolve().parents[1] / "schema" / "operations"
PROBE_RUNS: Final = 8
DURATION: Final = re.compile(r"duration: ([0-9.]+) ms")
PROBE_MAX_MS: Final = 2000.0

# Names for the service's fixed statements; the built ones are recognised by their shape.
KNOWN_STATEMENTS: Final = {
    articles.SELECT_ARTICLES_BY_IDS: "articles by ids",
    articles.SELECT_ARTICLE_BODIES: "article bodies",
    articles.SELECT_ARTICLE_BY_URL: "article by url",
    entities.SELECT_ENTITIES_BY_IDS: "entities by ids",
    entities.SELECT_ENTITY_BY_SLUG: "entity by slug",
    entities.SELECT_ALIASES: "aliases",
    entities.SELECT_ARTICLE_ENTITIES: "article entities",
    entities.SELECT_CO_MENTIONED: "co-mentioned",
    sources.SELECT_SOURCES_BY_IDS: "sources by ids",
    sources.SELECT_SOURCE_BY_DOMAIN: "source by domain",
}


def label(sql: str) -> str:
    if sql in KNOWN_STATEMENTS:
        return KNOWN_STATEMENTS[sql]
    if sql.startswith("EXPLAIN"):
        return "count estimate (EXPLAIN)"
    if "count(*)" in sql:
        kind = "search " if "search_vector" in sql else ""
        return f"{kind}count (capped)"
    if "FROM entities n" in sql:
        return "autocomplete"
    if "FROM entities e" in sql:
        return "entities by popularity"
    if "article_entities l" in sql:
        return "entity pages (LATERAL)"
    if "a.source_id = parent.id" in sql:
        return "source pages (LATERAL)"
    if "ts_rank_cd" in sql:
        return "search page (relevance)"
    if "search_vector" in sql:
        return "search page (newest)"
    if "FROM articles a" in sql:
        return "article page list"
    return sql.split()[0].lower()


class RecordingDatabase(Database):
    """A `Database` on one connection that keeps every statement with its arguments."""

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        super().__init__(conn)
        self.calls: list[tuple[str, tuple[object, ...]]] = []

    async def fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        self.calls.append((sql, args))
        return await super().fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: object) -> asyncpg.Record | None:
        self.calls.append((sql, args))
        return await super().fetchrow(sql, *args)

    async def fetchval(self, sql: str, *args: object) -> Any:
        self.calls.append((sql, args))
        return await super().fetchval(sql, *args)


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    operation: str
    variables: dict[str, object]
    next_page: bool = False  # also run the second page (after the first page's endCursor)


@dataclass(slots=True)
class PlanSummary:
    execution_ms: float
    planning_ms: float
    jit_ms: float
    hit: int
    read: int
    rows: int
    tree: str
    seq_scans: list[str]


@dataclass(slots=True)
class Finding:
    case: str
    statement: str
    sql: str
    args: tuple[object, ...]
    custom: PlanSummary | None
    generic: PlanSummary | None = None
    generic_chosen: bool = False
    probe_custom_ms: float = 0.0
    probe_generic_ms: float = 0.0
    note: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def _node_name(node: dict[str, Any]) -> str:
    name: str = node["Node Type"]
    if node.get("Parallel Aware"):
        name = "Parallel " + name
    target = node.get("Index Name") or node.get("Relation Name") or node.get("Function Name")
    if node["Node Type"] == "Aggregate":
        name = f"{node.get('Strategy', '')} Aggregate".strip()
    return f"{name} {target}" if target else name


def _tree(node: dict[str, Any]) -> str:
    children = node.get("Plans", [])
    if node["Node Type"] in ("Result",) and len(children) == 1:
        return _tree(children[0])
    name = _node_name(node)
    if not children:
        return name
    parts: list[tuple[str, int]] = []  # repeated siblings (BitmapOr arms) are counted once
    for text in (_tree(c) for c in children):
        if parts and parts[-1][0] == text:
            parts[-1] = (text, parts[-1][1] + 1)
        else:
            parts.append((text, 1))
    inner = ", ".join(f"{n} x {text}" if n > 1 else text for text, n in parts)
    return f"{name}[{inner}]"


def summarise(doc: dict[str, Any]) -> PlanSummary:
    plan = doc["Plan"]
    seq = [
        f"Seq Scan on {n['Relation Name']} (rows {n.get('Actual Rows', '?')}, "
        f"removed by filter {n.get('Rows Removed by Filter', 0)})"
        for n in _nodes(plan)
        if n["Node Type"] == "Seq Scan" and n.get("Relation Name") in LARGE_TABLES
    ]
    jit = doc.get("JIT", {}).get("Timing", {}).get("Total", 0.0)
    if isinstance(jit, dict):  # PG 17 nests the total
        jit = jit.get("Total", 0.0)
    return PlanSummary(
        execution_ms=float(doc.get("Execution Time", doc.get("Duration", 0.0))),
        planning_ms=float(doc.get("Planning Time", 0.0)),
        jit_ms=float(jit or 0.0),
        hit=int(plan.get("Shared Hit Blocks", 0)),
        read=int(plan.get("Shared Read Blocks", 0)),
        rows=int(plan.get("Actual Rows", 0)),
        tree=_tree(plan),
        seq_scans=seq,
    )


async def explain(conn: asyncpg.Connection[Any], sql: str, args: tuple[object, ...]) -> Any:
    raw = await conn.fetchval(f"EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) {sql}", *args)
    doc = orjson.loads(raw) if isinstance(raw, str | bytes) else raw
    return doc[0]


class PlanCacheProbe:
    """Runs a statement as asyncpg's statement cache does, to see which plan PG settles on."""

    def __init__(self, conn: asyncpg.Connection[Any]) -> None:
        self.conn = conn
        self.notices: list[str] = []
        self.auto_explain = False

    async def setup(self) -> None:
        self.conn.add_log_listener(lambda _conn, message: self.notices.append(message.message))
        try:
            await self.conn.execute("LOAD 'auto_explain'")
        except asyncpg.PostgresError as exc:
            print(f"(auto_explain unavailable, generic plans are timed only: {exc})")
            return
        for setting, value in (
            ("auto_explain.log_min_duration", "0"),
            ("auto_explain.log_analyze", "on"),
            ("auto_explain.log_buffers", "on"),
            ("auto_explain.log_format", "json"),
            ("auto_explain.log_level", "notice"),
        ):
            await self.conn.execute(f"SET {setting} = '{value}'")
        await self.conn.execute("SET auto_explain.log_min_duration = -1")
        self.auto_explain = True

    async def run(self, finding: Finding) -> None:
        statement = await self.conn.prepare(finding.sql)
        timings = []
        for _ in range(PROBE_RUNS):
            started = time.perf_counter()
            await statement.fetch(*finding.args)
            timings.append((time.perf_counter() - started) * 1000)
        row = await self.conn.fetchrow(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE statement = $1 AND NOT from_sql",
            finding.sql,
        )
        finding.probe_custom_ms = min(timings[:5])
        finding.probe_generic_ms = min(timings[5:])
        finding.generic_chosen = row is not None and row["generic_plans"] > 0
        if finding.generic_chosen and self.auto_explain:
            self.notices.clear()
            await self.conn.execute("SET auto_explain.log_min_duration = 0")
            try:
                await statement.fetch(*finding.args)
            finally:
                await self.conn.execute("SET auto_explain.log_min_duration = -1")
            await asyncio.sleep(0)
            for message in self.notices:
                if "{" in message:
                    doc = orjson.loads(message[message.index("{") :])
                    duration = DURATION.search(message)
                    if duration:
                        doc["Execution Time"] = float(duration.group(1))
                    finding.generic = summarise(doc)
                    break


def cases(p: Picks) -> list[Case]:
    common, rare = p.common_terms[0], p.rare_terms[0]
    popular_name = p.popular_entity.name
    word = next((w for w in popular_name.split()[1:] if len(w) >= 3), popular_name)
    article = global_id("Article", p.latest_article_id)
    older = global_id("Article", p.article_ids[0])
    return [
        Case("feed", "feed", {}, next_page=True),
        Case("feed nb", "feed", {"languages": ["nb"]}),
        Case(f"entity popular ({p.popular_entity.article_count})", "entity_page",
             {"slug": p.popular_entity.slug}, next_page=True),
        Case(f"entity rare ({p.rare_entity.article_count})", "entity_page",
             {"slug": p.rare_entity.slug}),
        Case(f"source popular ({p.popular_source.article_count})", "source_page",
             {"domain": p.popular_source.domain}),
        Case(f"source small ({p.small_source.article_count})", "source_page",
             {"domain": p.small_source.domain}),
        Case(f"search common {common!r} relevance", "search", {"text": common}),
        Case(f"search common {common!r} newest", "search",
             {"text": common, "orderBy": "NEWEST"}),
        Case(f"search rare {rare!r} relevance", "search", {"text": rare}),
        Case(f"search rare {rare!r} newest", "search", {"text": rare, "orderBy": "NEWEST"}),
        Case(f"autocomplete {popular_name[:2]!r}", "autocomplete", {"text": popular_name[:2]}),
        Case(f"autocomplete {popular_name[:4]!r}", "autocomplete", {"text": popular_name[:4]}),
        Case(f"autocomplete word {word[:4]!r}", "autocomplete", {"text": word[:4]}),
        Case(f"autocomplete {p.rare_entity.name[:6]!r}", "autocomplete",
             {"text": p.rare_entity.name[:6]}),
        Case("article page (latest)", "article_page", {"id": article}),
        Case("article page (random)", "article_page", {"id": older}),
    ]  # fmt: skip


async def run_case(
    conn: asyncpg.Connection[Any], settings: Settings, case: Case, operations: dict[str, str]
) -> list[tuple[str, RecordingDatabase, float]]:
    """Execute the case's operation(s); each run's recorded statements and wall time."""
    schema = build_schema(settings)
    runs = []
    variables = dict(case.variables)
    for page in (1, 2) if case.next_page else (1,):
        db = RecordingDatabase(conn)
        result = None
        elapsed = 0.0
        for _ in range(2):  # the second run is timed (warm caches)
            db.calls.clear()
            started = time.perf_counter()
            result = await schema.execute(
                operations[case.operation],
                variable_values=variables,
                context_value=make_context(settings, db),
            )
            elapsed = (time.perf_counter() - started) * 1000
        assert result is not None
        if result.errors:
            raise SystemExit(f"{case.name}: {result.errors}")
        runs.append((case.name if page == 1 else f"{case.name} page 2", db, elapsed))
        cursor = end_cursor(result.data)
        if cursor is None:
            break
        variables["after"] = cursor
    return runs


def _fmt(s: PlanSummary | None) -> str:
    if s is None:
        return f"{'':>8} {'':>6} {'':>11} {'':>6}"
    return f"{s.execution_ms:8.2f} {s.planning_ms:6.2f} {f'{s.hit}/{s.read}':>11} {s.rows:>6}"


async def main_async(args: argparse.Namespace) -> int:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(
        args.dsn, server_settings=SESSION_SETTINGS
    )
    probe_conn: asyncpg.Connection[Any] = await asyncpg.connect(
        args.dsn, server_settings=SESSION_SETTINGS
    )
    try:
        behind = await schema_behind(conn)
        if behind:
            print(f"WARNING: {behind}; statements may fail (`newsgraph migrate` upgrades it)")
        picks = await pick(conn, seed=args.seed)
        settings = Settings(database_url=args.dsn)
        operations = {
            path.stem: path.read_text(encoding="utf-8")
            for path in sorted(OPERATIONS_DIR.glob("*.graphql"))
        }
        probe = PlanCacheProbe(probe_conn)
        if not args.no_probe:
            await probe.setup()
        print(
            f"popular entity {picks.popular_entity.slug} ({picks.popular_entity.article_count} "
            f"articles), rare {picks.rare_entity.slug} ({picks.rare_entity.article_count}); "
            f"terms common {picks.common_terms[:3]}, rare {picks.rare_terms[:3]}"
        )
        header = f"{'exec ms':>8} {'plan':>6} {'hit/read':>11} {'rows':>6}  statement / plan"
        findings: list[Finding] = []
        for case in cases(picks):
            if args.only and args.only not in case.name:
                continue
            for name, db, elapsed in await run_case(conn, settings, case, operations):
                seen: set[str] = set()
                print(f"\n== {name}: {len(db.calls)} statements, {elapsed:.1f} ms in-process")
                print(header)
                for sql, call_args in db.calls:
                    key = sql + repr(call_args)
                    if key in seen:
                        continue
                    seen.add(key)
                    finding = Finding(name, label(sql), sql, call_args, None)
                    if sql.startswith("EXPLAIN"):
                        started = time.perf_counter()
                        await conn.fetchval(sql, *call_args)
                        finding.note = (
                            f"planning only, {(time.perf_counter() - started) * 1000:.2f} ms"
                        )
                    else:
                        doc = await explain(conn, sql, call_args)
                        finding.custom = summarise(doc)
                        finding.raw = doc
                        if not args.no_probe and finding.custom.execution_ms < PROBE_MAX_MS:
                            await probe.run(finding)
                    findings.append(finding)
                    _print_finding(finding, verbose=args.verbose)
        return _report(findings, args.slow_ms, args.json)
    finally:
        await conn.close()
        await probe_conn.close()


def _print_finding(f: Finding, *, verbose: bool) -> None:
    c = f.custom
    extra = f" JIT {c.jit_ms:.1f} ms" if c and c.jit_ms else ""
    print(f"{_fmt(c)}  {f.statement}{extra}{'  ' + f.note if f.note else ''}")
    if c is not None:
        print(f"{'':>35}  {c.tree}")
        for seq in c.seq_scans:
            print(f"{'':>35}  !! {seq}")
    if f.generic_chosen:
        g = f.generic
        print(
            f"{'':>35}  plan cache switches to a GENERIC plan: {f.probe_generic_ms:.2f} ms "
            f"(custom {f.probe_custom_ms:.2f} ms)"
        )
        if g is not None:
            print(f"{_fmt(g)}  (generic plan) {g.tree}")
            for seq in g.seq_scans:
                print(f"{'':>35}  !! generic: {seq}")
    if verbose:
        print(f.sql.strip())
        print(f"args: {f.args!r}")


def _report(findings: list[Finding], slow_ms: float, json_path: str | None) -> int:
    seq = [f for f in findings if f.custom and f.custom.seq_scans]
    generic_seq = [f for f in findings if f.generic_chosen and f.generic and f.generic.seq_scans]
    slow = [f for f in findings if f.custom and f.custom.execution_ms > slow_ms]
    generic_slow = [
        f for f in findings
        if f.generic_chosen and f.probe_generic_ms > max(2 * f.probe_custom_ms, 5.0)
    ]  # fmt: skip
    print("\n== summary")
    print(f"{len(findings)} distinct statements explained")
    for f in seq:
        print(f"FAIL seq scan: [{f.case}] {f.statement}: {'; '.join(f.custom.seq_scans)}")  # type: ignore[union-attr]
    for f in generic_seq:
        print(f"FAIL seq scan in the generic plan the plan cache adopts: [{f.case}] {f.statement}")
    for f in slow:
        assert f.custom is not None
        print(f"SLOW {f.custom.execution_ms:.1f} ms (> {slow_ms:g}): [{f.case}] {f.statement}")
    for f in generic_slow:
        print(
            f"SLOW generic plan {f.probe_generic_ms:.1f} ms vs custom {f.probe_custom_ms:.1f} ms:"
            f" [{f.case}] {f.statement}"
        )
    if json_path:
        Path(json_path).write_bytes(
            orjson.dumps(
                [
                    {
                        "case": f.case,
                        "statement": f.statement,
                        "sql": f.sql,
                        "args": [repr(a) for a in f.args],
                        "plan": f.raw,
                        "generic_chosen": f.generic_chosen,
                    }
                    for f in findings
                ],
                option=orjson.OPT_INDENT_2,
            )
        )
        print(f"plans written to {json_path}")
    failed = bool(seq or generic_seq)
    print("RESULT: " + ("FAIL (seq scans on large tables)" if failed else "OK (no seq scans)"))
    return 1 if failed else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="EXPLAIN the statements behind the operations.")
    parser.add_argument("--dsn", required=True, help="postgresql://... of a generated database")
    parser.add_argument("--seed", type=int, default=1, help="parameter sampling seed (1)")
    parser.add_argument("--slow-ms", type=float, default=50.0, help="warn above this (50)")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--no-probe", action="store_true", help="skip the plan-cache probe")
    parser.add_argument("--verbose", action="store_true", help="print SQL and arguments")
    parser.add_argument("--json", help="write the plans (JSON) to this file")
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
