"""Bulk ingest throughput: NDJSON and GraphQL through `newsgraph serve`, against the COPY floor.

    python bench/ingest.py --dsn postgresql://postgres@127.0.0.1:5432/newsgraph_bench_ingest \
        [--articles 100000] [--prefill 1000000]

1. Prepares the database named in --dsn (it must start with `newsgraph_bench`): a copy of the
   1M-article database `newsgraph_bench` (`CREATE DATABASE ... TEMPLATE`, which needs nobody
   connected to it), or, with --generate or when that fails, a fresh one filled by
   bench/generate.py; then migrates it to head (the code may be ahead of the bench database).
   This "base" database is never written by a phase: each phase gets its own copy of it
   (`CREATE DATABASE ... TEMPLATE base STRATEGY FILE_COPY`), then a CHECKPOINT, so every phase
   inserts its articles into the same ~1M-article state.
2. Builds 2 x --articles distinct ArticleInput objects (camelCase JSON, as the API takes them)
   with bench/generate.py's vocabularies and article maker, drawing entities and sources from
   the database's own catalogue (Zipf over article counts): title, summary, a 1-2 KB body
   (plain paragraphs, or light HTML for ~40%), publishedAt, language for half of them
   (detection runs for the other half), source, authors, tags, section, image, externalId,
   canonicalUrl for alternate URLs, tracking parameters on ~10% of URLs, and partner entity
   tags (catalogue entities, by name and kind, half with their Wikidata id) on ~30%.
   Deterministic for the same --seed and --now. Odd ones go to NDJSON, even ones to GraphQL,
   so both cover the same time span; URLs and external ids are new.
3. Phases, each on a fresh copy of the base:
   * ndjson: `newsgraph serve` (1 worker, loopback), the entity linker warmed first (an
     ingest of one invalid line builds it and writes nothing); the --articles lines POSTed to
     /v1/ingest as one chunked request while the streamed answer is read (httpx sends the
     whole body before it reads, and the service stops waiting for unread answers after
     ~50k lines, so this speaks HTTP/1.1 through h11 like tests/rest/test_ingest_durability.py);
   * graphql: a new server on its own copy; the other --articles through `ingestArticles` in
     sequential calls of --graphql-batch (1,000);
   * floor1 / floor2: the article rows and article-entity rows the NDJSON phase stored (read
     back from its database: after HTML reduction, language detection and linking) COPY'd
     with asyncpg `copy_records_to_table` into `articles` and `article_entities` of a fresh
     copy: the real tables, so the same columns, indexes (GIN full text included), foreign keys
     and counter triggers as the service writes into; --floor-chunk articles and their links
     per transaction, over one connection, then split over two connections in parallel.
     (The service also writes article_urls rows; the floor does not, as the issue defines it.)
   Each phase is aborted after --phase-timeout seconds (its rate is then over what it did).
   After a service phase's last answer, the bench waits until the related-stories queue
   (migration 0007) is empty and the article-counter deltas (migration 0011) are folded:
   the server's indexer and folder work after commit, on the same 2 cores. A floor phase
   folds its counter deltas after the load, timed apart (`fold_s`): its rate is the load.
   Meanwhile a probe GETs /healthz every 0.1 s (how long requests wait while the server
   ingests and indexes).
4. Prints per phase articles/s, statuses, CPU per article of the server process (with the
   indexer process it starts, NEWSGRAPH_RELATED_INDEXER=process) and of the
   phase's PostgreSQL backends, the CPU other processes used meanwhile, the load average; for
   the service phases a second row "+index": the rate until the queue was empty (fully
   indexed) and the CPU up to then, beside the acknowledged rate and CPU up to the last
   answer; the queue depth at the last answer and the /healthz latencies; the
   ratios NDJSON/floor1, NDJSON/floor2 (goal: >= 50%), the same fully indexed, and
   GraphQL/floor2; the server's peak
   RSS (VmHWM) and the linker's build time; then one JSON line. --profile DIR records the
   NDJSON server with py-spy (raw collapsed stacks) and prints where its time went.
   Stops the servers and drops every database it created unless --keep.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import html
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Final, cast
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import generate
import h11
import httpx
import orjson

from service.db import migrate
from service.db.pool import SESSION_SETTINGS

TEMPLATE: Final = "newsgraph_bench"
# Migration 0011's counter deltas (service.db.counters), spelled out here so this script also
# measures commits before it (the tables then do not exist and nothing is pending).
PENDING_DELTAS: Final = (
    "SELECT (SELECT count(*) FROM entity_count_deltas) + (SELECT count(*) FROM source_count_deltas)"
)
FOLD_DELTAS: Final = (
    """
    WITH taken AS (DELETE FROM source_count_deltas RETURNING source_id, delta),
    sums AS (SELECT source_id, sum(delta) AS delta FROM taken GROUP BY source_id)
    UPDATE sources s SET article_count = greatest(s.article_count + d.delta, 0)
    FROM sums d WHERE s.id = d.source_id AND d.delta <> 0
    """,
    """
    WITH taken AS (DELETE FROM entity_count_deltas RETURNING entity_id, delta),
    sums AS (SELECT entity_id, sum(delta) AS delta FROM taken GROUP BY entity_id)
    UPDATE entities e SET article_count = greatest(e.article_count + s.delta, 0)
    FROM sums s WHERE e.id = s.entity_id AND s.delta <> 0
    """,
)
BENCH_DIR: Final = Path(__file__).resolve().parent
READY_TIMEOUT: Final = 180.0
SEND_CHUNK: Final = 256 * 1024
URL_ID_OFFSET: Final = 50_000_000  # URLs and external ids of generated articles start here
HTML_SHARE: Final = 0.4
TRACKING_SHARE: Final = 0.1
PARTNER_TAG_SHARE: Final = 0.3
NO_LANGUAGE_SHARE: Final = 0.5
NO_DATE_SHARE: Final = 0.01
# Server settings this bench needs beyond the defaults (printed with the results): a
# GraphQL call of 1,000 of these articles is ~2.5 MB (default body limit 1 MiB: 413) and
# costs 1,112 points with `errors` selected (default cap 1,000 per request), and the
# anonymous budget (3,000 points a minute) allows two such calls a minute.
SERVER_OVERRIDES: Final = {
    "NEWSGRAPH_MAX_BODY_BYTES": str(32 * 1024 * 1024),
    "NEWSGRAPH_MAX_QUERY_COST": "100000",
    "NEWSGRAPH_RATE_LIMIT_ANONYMOUS": "0",
}
INGEST_MUTATION: Final = """
mutation Ingest($articles: [ArticleInput!]!) {
  ingestArticles(articles: $articles) { index status errors { path code message } }
}
"""
LINKER_BUILT: Final = re.compile(r"entity linker built: (\d+) surfaces in ([\d.]+) s")


# --------------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------------


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def _database_name(dsn: str) -> str:
    return urlsplit(dsn).path.lstrip("/")


async def _admin(dsn: str) -> asyncpg.Connection[Any]:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(_with_database(dsn, "postgres"))
    return conn


async def drop_database(dsn: str, name: str) -> None:
    conn = await _admin(dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
    finally:
        await conn.close()


async def copy_database(dsn: str, name: str, template: str, attempts: int = 6) -> float:
    """(Re)create `name` as a file copy of `template`; seconds taken. Retries while busy."""
    conn = await _admin(dsn)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {_quote(name)} WITH (FORCE)")
        for attempt in range(attempts):
            started = time.perf_counter()
            try:
                await conn.execute(
                    f"CREATE DATABASE {_quote(name)} TEMPLATE {_quote(template)} STRATEGY FILE_COPY"
                )
                return time.perf_counter() - started
            except asyncpg.ObjectInUseError as exc:
                if attempt == attempts - 1:
                    raise
                print(f"  {template} is in use ({exc}); retrying in 10 s", flush=True)
                await asyncio.sleep(10)
        raise AssertionError("unreachable")
    finally:
        await conn.close()


async def count_articles(dsn: str) -> int | None:
    try:
        conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    except (asyncpg.InvalidCatalogNameError, OSError):
        return None
    try:
        count: int = await conn.fetchval("SELECT count(*) FROM articles")
        return count
    except asyncpg.UndefinedTableError:
        return None
    finally:
        await conn.close()


async def checkpoint(dsn: str) -> None:
    conn = await _admin(dsn)
    try:
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def prepare_base(args: argparse.Namespace, created: list[str]) -> str:
    """The base database (prefilled, migrated to head); how it was made is printed."""
    dsn: str = args.dsn
    name = _database_name(dsn)
    started = time.perf_counter()
    how = ""
    if not args.generate:
        template_dsn = _with_database(dsn, args.template)
        present = await count_articles(template_dsn)
        if present is None:
            how = f"{args.template} has no articles table"
        elif present != args.prefill:
            how = f"{args.template} holds {present:,} articles, not --prefill {args.prefill:,}"
        else:
            try:
                created.append(name)
                seconds = await copy_database(dsn, name, args.template)
                print(f"base {name}: copy of {args.template} in {seconds:.1f}s", flush=True)
            except asyncpg.PostgresError as exc:
                how = f"CREATE DATABASE ... TEMPLATE {args.template} failed: {exc}"
        if how:
            print(f"note: {how}; generating instead", flush=True)
    if args.generate or how:
        created.append(name)
        command = [
            sys.executable, str(BENCH_DIR / "generate.py"), "--dsn", dsn, "--create",
            "--articles", str(args.prefill), "--seed", str(args.seed),
        ]  # fmt: skip
        if args.entities is not None:
            command += ["--entities", str(args.entities)]
        print(f"generating the base: {' '.join(command[1:])}", flush=True)
        await asyncio.to_thread(subprocess.run, command, check=True)
    await asyncio.to_thread(migrate.upgrade, dsn)
    print(f"base ready (migrated) in {time.perf_counter() - started:.1f}s", flush=True)
    return dsn


# --------------------------------------------------------------------------------------------
# Articles (from generate.py's maker, over the database's own catalogue and sources)
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Catalogue:
    world: generate.World
    wikidata: dict[int, str]


async def load_world(dsn: str, seed: int, total: int, now: datetime) -> Catalogue:
    """generate.World with the database's sources and entities (popularity = article_count)."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    try:
        source_rows = await conn.fetch(
            "SELECT id, domain, name, country, coalesce(language, 'en') AS language "
            "FROM sources ORDER BY id"
        )
        entity_rows = await conn.fetch(
            "SELECT id, kind, name, wikidata_id, article_count FROM entities ORDER BY id"
        )
    finally:
        await conn.close()
    if not source_rows or not entity_rows:
        raise SystemExit("the base database has no sources or no entities")
    sources = [
        generate.SourceSpec(r["id"], r["domain"], r["name"], r["country"], r["language"])
        for r in source_rows
    ]
    # The maker draws a 1-based position in `sources` (ids need not be contiguous).
    by_language: dict[str, generate.Zipf] = {}
    for language in ("en", "nb"):
        positions = [i + 1 for i, s in enumerate(sources) if s.language == language]
        by_language[language] = generate.Zipf.of(
            positions or list(range(1, len(sources) + 1)), exponent=1.0, offset=2.0
        )
    top = entity_rows[-1]["id"]
    cat = generate.Catalogue()
    cat.kinds = ["OTHER"] * (top + 1)
    cat.names = ["Oslo"] * (top + 1)
    wikidata: dict[int, str] = {}
    for r in entity_rows:
        cat.kinds[r["id"]] = r["kind"]
        cat.names[r["id"]] = r["name"]
        if r["wikidata_id"]:
            wikidata[r["id"]] = r["wikidata_id"]
    ranked = sorted(entity_rows, key=lambda r: (-r["article_count"], r["id"]))
    cat.by_rank = [r["id"] for r in ranked]
    tail = generate._tail_words(seed + 101, 20_000)
    world = generate.World(
        seed=seed,
        articles=total,
        now=now,
        tables=(),
        body_sentences=0,
        sources=sources,
        sources_by_language=by_language,
        catalogue=cat,
        entity_cumulative=generate.zipf_cumulative(len(cat.by_rank), 1.0, 5.0),
        tail=generate.Zipf.of(tail, exponent=1.05, offset=10.0),
        en_nouns=generate.Zipf.of(generate.EN_NOUNS, 0.9, 3.0),
        en_adjectives=generate.Zipf.of(generate.EN_ADJECTIVES, 0.8, 3.0),
        en_verbs=generate.Zipf.of(generate.EN_VERBS, 0.8, 3.0),
        nb_nouns=generate.Zipf.of(generate.NB_NOUNS, 0.9, 3.0),
        nb_adjectives=generate.Zipf.of(generate.NB_ADJECTIVES, 0.8, 3.0),
        nb_verbs=generate.Zipf.of(generate.NB_VERBS, 0.8, 3.0),
    )
    return Catalogue(world, wikidata)


def _rfc3339(moment: datetime, rng: random.Random, language: str) -> str:
    """As partners write it: with Z, +00:00 or a local offset."""
    roll = rng.random()
    if roll < 0.4:
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    if roll < 0.7:
        hours = 1 if language == "en" else rng.choice((1, 2))
        return moment.astimezone(timezone(timedelta(hours=hours))).isoformat()
    return moment.isoformat()


class InputMaker:
    """ArticleInput dicts from generate.ArticleMaker rows, with bodies, HTML and partner tags."""

    def __init__(self, catalogue: Catalogue, seed: int) -> None:
        self.cat = catalogue
        self.maker = generate.ArticleMaker(catalogue.world, seed * 1_000_003 + 424_242)
        self.rng = self.maker.rng
        self.sources = {s.id: s for s in catalogue.world.sources}

    def _body(self, language: str, names: list[str], place: str) -> str:
        rng = self.rng
        text = self.maker._nb_text if language == "nb" else self.maker._en_text
        target = rng.randint(1000, 2000)
        paragraphs: list[str] = []
        size = 0
        while size < target:
            first = rng.choice(names)
            second = rng.choice(names) if rng.random() < 0.6 else rng.choice(generate.REAL_PLACES)
            paragraph = text(first, second, place)[1]
            paragraphs.append(paragraph)
            size += len(paragraph) + 2
        if rng.random() >= HTML_SHARE:
            return "\n\n".join(paragraphs)
        parts = []
        for i, paragraph in enumerate(paragraphs):
            escaped = html.escape(paragraph, quote=False)
            if i == 0 and names[0] in paragraph:
                escaped = escaped.replace(
                    html.escape(names[0], quote=False),
                    f"<strong>{html.escape(names[0], quote=False)}</strong>",
                    1,
                )
            if rng.random() < 0.15:
                escaped += ' <a href="https://example.org/related">Read more</a>'
            parts.append(f"<p>{escaped}</p>")
        if rng.random() < 0.3:
            parts.insert(1, f"<h2>{html.escape(place, quote=False)}</h2>")
        return "\n".join(parts)

    def make(self, k: int) -> dict[str, object]:
        """The k-th article (k >= 1) as an ArticleInput dict."""
        rng = self.rng
        first_link = len(self.maker.links)
        row = self.maker.article(k)
        links = self.maker.links[first_link:]
        self.maker.links.clear()
        self.maker.urls.clear()
        (
            _, _, url, canonical, external_id, title, summary, _, authors, language, section,
            tags, image_url, image_credit, image_caption, image_alt, image_width, image_height,
            published, estimated, *_,
        ) = row  # fmt: skip
        source = self.sources[int(str(row[1]))]
        new_id = URL_ID_OFFSET + k
        canonical = str(canonical).removesuffix(f"-{k}") + f"-{new_id}"
        alternate = url != row[3]
        url = f"https://{source.domain}/a/{new_id}" if alternate else canonical
        if rng.random() < TRACKING_SHARE:
            url += "?utm_source=partner&utm_medium=feed&utm_campaign=bulk"
        linked = [(cast(int, link[1]), cast(float, link[2])) for link in links]
        names = [self.maker._entity_display(entity_id) for entity_id, _ in linked[:3]]
        place = rng.choice(generate.REAL_PLACES[:33] if language == "nb" else generate.REAL_PLACES)
        item: dict[str, object] = {
            "url": url,
            "title": title,
            "summary": summary,
            "body": self._body(str(language), names or [place], place),
            "authors": authors,
            "section": section,
            "tags": tags,
            "source": {"domain": source.domain, "name": source.name, "country": source.country},
        }
        if alternate:
            item["canonicalUrl"] = canonical
        if not estimated and rng.random() >= NO_DATE_SHARE:
            item["publishedAt"] = _rfc3339(cast(datetime, published), rng, str(language))
        if rng.random() >= NO_LANGUAGE_SHARE:
            item["language"] = language
        if external_id is not None:
            item["externalId"] = f"{row[1]}-{new_id}"
        if image_url is not None:
            item["image"] = {
                "url": str(image_url).replace(f"/{k}.jpg", f"/{new_id}.jpg"),
                "credit": image_credit,
                "caption": image_caption,
                "alt": image_alt,
                "width": image_width,
                "height": image_height,
            }
        if rng.random() < PARTNER_TAG_SHARE:
            tagged = []
            for entity_id, salience in linked[: rng.randint(1, 3)]:
                tag: dict[str, object] = {
                    "name": self.cat.world.catalogue.names[entity_id],
                    "kind": self.cat.world.catalogue.kinds[entity_id],
                    "salience": round(salience, 3),
                }
                if entity_id in self.cat.wikidata and rng.random() < 0.5:
                    tag["wikidataId"] = self.cat.wikidata[entity_id]
                tagged.append(tag)
            item["entities"] = tagged
        return item


def build_inputs(
    catalogue: Catalogue, seed: int, count: int
) -> tuple[list[dict[str, object]], list[dict[str, object]]]:
    """(NDJSON articles, GraphQL articles): odd and even k, so both span the same time."""
    maker = InputMaker(catalogue, seed)
    ndjson: list[dict[str, object]] = []
    graphql: list[dict[str, object]] = []
    for k in range(1, 2 * count + 1):
        (ndjson if k % 2 else graphql).append(maker.make(k))
    return ndjson, graphql


def describe_inputs(items: Sequence[dict[str, object]]) -> str:
    bodies = [len(str(i["body"])) for i in items]
    html_bodies = sum(str(i["body"]).startswith("<") for i in items)
    no_language = sum("language" not in i for i in items)
    tagged = sum("entities" in i for i in items)
    nb = sum(i.get("language") == "nb" or ".no/" in str(i["url"]) for i in items)
    distinct = len({i["url"] for i in items})
    return (
        f"{len(items):,} articles ({distinct:,} distinct URLs), body {min(bodies)}-{max(bodies)} "
        f"chars (mean {sum(bodies) / len(bodies):,.0f}), HTML {100 * html_bodies / len(items):.0f}%"
        f", no language {100 * no_language / len(items):.0f}%, partner tags "
        f"{100 * tagged / len(items):.0f}%, Norwegian sources ~{100 * nb / len(items):.0f}%"
    )


# --------------------------------------------------------------------------------------------
# Measuring: CPU of the server, of PostgreSQL backends, of everything else; load average
# --------------------------------------------------------------------------------------------

CLOCK_TICKS: Final = os.sysconf("SC_CLK_TCK")


def _cpu_seconds(pid: int) -> float | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def _descendants(pid: int) -> list[int]:
    """The processes `pid` started (any of its threads), and theirs."""
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                for child in (task / "children").read_text().split():
                    found += [int(child), *_descendants(int(child))]
    return found


def _machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot (/proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = values[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS, steal / CLOCK_TICKS


def vm_hwm_kib(pid: int) -> int | None:
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return None


@dataclass(slots=True)
class PhaseResult:
    name: str
    articles: int = 0
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    aborted: bool = False
    note: str = ""
    app_cpu: float = 0.0  # the server process (or this process, for the floor)
    db_cpu: float = 0.0  # the phase's client backends
    pg_background_cpu: float = 0.0  # checkpointer, WAL writer, background writer, ...
    other_cpu: float = 0.0  # everything else on the machine (other engineers' tests ...)
    steal: float = 0.0
    load_start: float = 0.0
    load_max: float = 0.0
    load_end: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.articles / self.seconds if self.seconds else 0.0

    def as_json(self) -> dict[str, object]:
        per = 1e6 / self.articles if self.articles else 0.0
        return {
            "phase": self.name,
            "articles": self.articles,
            "seconds": round(self.seconds, 2),
            "articles_per_s": round(self.rate, 1),
            "statuses": dict(self.statuses),
            "aborted": self.aborted,
            "app_cpu_us_per_article": round(self.app_cpu * per, 1),
            "db_cpu_us_per_article": round(self.db_cpu * per, 1),
            "pg_background_cpu_s": round(self.pg_background_cpu, 1),
            "other_cores": round(self.other_cpu / self.seconds, 2) if self.seconds else 0.0,
            "steal_cores": round(self.steal / self.seconds, 2) if self.seconds else 0.0,
            "load_1m": [
                round(self.load_start, 2),
                round(self.load_max, 2),
                round(self.load_end, 2),
            ],
            **self.extra,
        }


class Meter:
    """CPU by process group over a phase, sampled every second (backends come and go)."""

    def __init__(self, admin: asyncpg.Connection[Any], database: str, app_pid: int) -> None:
        self.admin = admin
        self.database = database
        self.app_pid = app_pid
        self.helper_pids: list[int] = []  # e.g. py-spy: not "other" load
        self._start: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._groups: dict[int, str] = {}
        self._machine_start = (0.0, 0.0)
        self._task: asyncio.Task[None] | None = None
        self._loads: list[float] = []

    async def _pids(self) -> dict[int, str]:
        rows = await self.admin.fetch(
            "SELECT pid, datname, backend_type FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        )
        groups = {}
        for r in rows:
            if r["backend_type"] == "client backend":
                if r["datname"] == self.database:
                    groups[int(r["pid"])] = "db"
            elif r["backend_type"] != "autovacuum launcher":
                groups[int(r["pid"])] = "pg_background"
        for pid in (os.getpid(), *self.helper_pids):
            groups[pid] = "self"
        groups[self.app_pid] = "app"  # the floor's "app" is this process
        if self.app_pid != os.getpid():
            for pid in _descendants(self.app_pid):  # the server's indexer process
                groups[pid] = "app"
        return groups

    async def _sample(self, first: bool) -> None:
        for pid, group in (await self._pids()).items():
            seconds = _cpu_seconds(pid)
            if seconds is None:
                continue
            if pid not in self._groups:
                self._groups[pid] = group
                self._start[pid] = seconds if first else 0.0
            self._last[pid] = seconds
        self._loads.append(os.getloadavg()[0])

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            await self._sample(first=False)

    async def begin(self) -> None:
        self._machine_start = _machine_cpu()
        await self._sample(first=True)
        self._task = asyncio.create_task(self._run())

    async def read(self) -> dict[str, float]:
        """CPU seconds by group so far (the meter keeps running)."""
        await self._sample(first=False)
        used: dict[str, float] = dict.fromkeys(("app", "db", "pg_background", "self"), 0.0)
        for pid, group in self._groups.items():
            used[group] += self._last[pid] - self._start[pid]
        return used

    async def end(self, result: PhaseResult) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        used = await self.read()
        busy, steal = (b - a for a, b in zip(self._machine_start, _machine_cpu(), strict=True))
        result.app_cpu = used["app"]
        result.db_cpu = used["db"]
        result.pg_background_cpu = used["pg_background"]
        result.other_cpu = max(busy - sum(used.values()) - steal, 0.0)
        result.steal = steal
        result.load_start, result.load_end = self._loads[0], self._loads[-1]
        result.load_max = max(self._loads)
        if self.app_pid != os.getpid():
            result.extra["bench_client_cpu_s"] = round(used["self"], 1)


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


def _newsgraph() -> list[str]:
    script = Path(sys.executable).with_name("newsgraph")
    return [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]


@dataclass(slots=True)
class Server:
    proc: subprocess.Popen[bytes]
    log: Path
    base_url: str
    linker_surfaces: int = 0
    linker_build_s: float = 0.0
    linker_warmup_s: float = 0.0
    linker_builds: int = 0

    def scan_log(self) -> None:
        builds = LINKER_BUILT.findall(self.log.read_text(errors="replace"))
        self.linker_builds = len(builds)
        if builds:
            self.linker_surfaces, self.linker_build_s = int(builds[0][0]), float(builds[0][1])


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _spawn(env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [*_newsgraph(), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@contextlib.asynccontextmanager
async def server(dsn: str, name: str) -> AsyncIterator[Server]:
    """`newsgraph serve` (1 worker, loopback) with a warm entity linker; SIGTERM at the end."""
    port = _free_port()
    log = Path(tempfile.mkstemp(prefix=f"newsgraph-ingest-{name}-", suffix=".log")[1])
    data_dir = tempfile.mkdtemp(prefix="newsgraph-ingest-data-")
    env = {
        **os.environ,
        "DATABASE_URL": dsn,
        "NEWSGRAPH_WORKERS": "1",
        "NEWSGRAPH_HOST": "127.0.0.1",
        "NEWSGRAPH_AUTH": "off",
        "NEWSGRAPH_DATA_DIR": data_dir,
        **SERVER_OVERRIDES,
    }
    proc = _spawn(env, port, log)
    running = Server(proc, log, f"http://127.0.0.1:{port}")
    try:
        async with httpx.AsyncClient(base_url=running.base_url, timeout=600, trust_env=False) as c:
            deadline = time.monotonic() + READY_TIMEOUT
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"newsgraph serve exited ({proc.returncode}): see {log}")
                with contextlib.suppress(httpx.TransportError):
                    if (await c.get("/readyz")).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit(f"/readyz not 200 after {READY_TIMEOUT:.0f}s: see {log}")
                await asyncio.sleep(0.25)
            # One line without url and title: REJECTED, nothing written, but the linker is
            # built on the way (the first ingest waits for it).
            started = time.perf_counter()
            answer = await c.post(
                "/v1/ingest", content=b"{}\n", headers={"content-type": "application/x-ndjson"}
            )
            running.linker_warmup_s = time.perf_counter() - started
            if answer.status_code != 200 or b"REJECTED" not in answer.content:
                raise SystemExit(f"warm-up ingest failed: {answer.status_code} {answer.text}")
        running.scan_log()
        print(
            f"  server pid {proc.pid} ready on {running.base_url}; entity linker: "
            f"{running.linker_surfaces:,} surfaces built in {running.linker_build_s:.2f}s "
            f"(warm-up request {running.linker_warmup_s:.1f}s incl. reading the catalogue), "
            f"RSS peak so far {(vm_hwm_kib(proc.pid) or 0) / 1024:,.0f} MiB",
            flush=True,
        )
        yield running
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.to_thread(proc.wait, 30)
            except subprocess.TimeoutExpired:
                proc.kill()
                await asyncio.to_thread(proc.wait, 10)
        shutil.rmtree(data_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# NDJSON: one chunked POST, its answer read while sending (h11)
# --------------------------------------------------------------------------------------------


class DuplexPost:
    """One HTTP/1.1 POST with a chunked body whose streamed answer is read while sending."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.conn = h11.Connection(our_role=h11.CLIENT)
        self.status: int | None = None

    @classmethod
    async def open(cls, base_url: str, path: str, content_type: str) -> DuplexPost:
        parts = urlsplit(base_url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
        post = cls(reader, writer)
        request = h11.Request(
            method="POST",
            target=path,
            headers=[
                ("Host", f"{host}:{port}"),
                ("Content-Type", content_type),
                ("Transfer-Encoding", "chunked"),
            ],
        )
        writer.write(post.conn.send(request) or b"")
        await writer.drain()
        return post

    async def send(self, chunks: Sequence[bytes]) -> None:
        for chunk in chunks:
            self.writer.write(self.conn.send(h11.Data(data=chunk)) or b"")
            await self.writer.drain()
        self.writer.write(self.conn.send(h11.EndOfMessage()) or b"")
        await self.writer.drain()

    async def lines(self) -> AsyncIterator[bytes]:
        """The answer's lines as they arrive, until it ends."""
        pending = b""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.reader.read(1 << 18))
            elif isinstance(event, h11.Response):
                self.status = event.status_code
            elif isinstance(event, h11.Data):
                *complete, pending = (pending + bytes(event.data)).split(b"\n")
                for line in complete:
                    yield line
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                if pending:
                    yield pending
                return

    def close(self) -> None:
        self.writer.close()


def ndjson_chunks(items: Sequence[dict[str, object]]) -> list[bytes]:
    chunks: list[bytes] = []
    current: list[bytes] = []
    size = 0
    for item in items:
        line = orjson.dumps(item, option=orjson.OPT_APPEND_NEWLINE)
        current.append(line)
        size += len(line)
        if size >= SEND_CHUNK:
            chunks.append(b"".join(current))
            current, size = [], 0
    if current:
        chunks.append(b"".join(current))
    return chunks


async def run_ndjson(
    base_url: str, chunks: list[bytes], expected: int, result: PhaseResult
) -> None:
    started = time.perf_counter()
    post = await DuplexPost.open(base_url, "/v1/ingest", "application/x-ndjson")
    sender = asyncio.create_task(post.send(chunks))
    first_answer: float | None = None
    line_no = 0
    try:
        async for raw in post.lines():
            answer = orjson.loads(raw)
            if "error" in answer:
                result.note = f"stream error: {answer['error']}"
                break
            line_no += 1
            if first_answer is None:
                first_answer = time.perf_counter() - started
            if answer["line"] != line_no:
                raise SystemExit(f"answer out of order: line {answer['line']} for {line_no}")
            result.statuses[answer["status"]] += 1
            if answer["status"] == "REJECTED" and "first_rejection" not in result.extra:
                result.extra["first_rejection"] = answer["errors"]
        result.articles = line_no
        result.seconds = time.perf_counter() - started
        await sender
    finally:
        sender.cancel()
        post.close()
    if post.status != 200:
        raise SystemExit(f"POST /v1/ingest answered {post.status}")
    result.extra["first_answer_s"] = round(first_answer or 0.0, 2)
    if line_no != expected and not result.note:
        result.note = f"{line_no} answers for {expected} lines"


async def queue_depth(conn: asyncpg.Connection[Any]) -> int:
    """Articles waiting for related-stories indexing (0 before migration 0007: indexing
    then happened inside the ingest transaction)."""
    if await conn.fetchval("SELECT to_regclass('related_queue')") is None:
        return 0
    depth: int = await conn.fetchval("SELECT count(*) FROM related_queue")
    return depth


async def refresh_log_depth(dsn: str) -> int:
    """Rows in the related-lists refresh log (migration 0008): stored lists to re-rank."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT to_regclass('related_refresh')") is None:
            return 0
        depth: int = await conn.fetchval("SELECT count(*) FROM related_refresh")
        return depth
    finally:
        await conn.close()


async def pending_counts(conn: asyncpg.Connection[Any]) -> int:
    """Article-counter deltas not folded yet (migration 0011; 0 before it: the triggers
    then updated the counters inside the ingest transaction)."""
    if await conn.fetchval("SELECT to_regclass('entity_count_deltas')") is None:
        return 0
    depth: int = await conn.fetchval(PENDING_DELTAS)
    return depth


async def wait_indexed(dsn: str, started: float, limit: float) -> tuple[int, int, float | None]:
    """The related-stories queue depth and the unfolded counter deltas now, and the seconds
    from `started` until both are empty (None if not within `limit` seconds). Polls every
    0.2 s over one connection."""
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    try:
        backlog, deltas = await queue_depth(conn), await pending_counts(conn)
        deadline = time.perf_counter() + limit
        depth = backlog + deltas
        while depth:
            if time.perf_counter() > deadline:
                return backlog, deltas, None
            await asyncio.sleep(0.2)
            depth = await queue_depth(conn) + await pending_counts(conn)
        return backlog, deltas, time.perf_counter() - started
    finally:
        await conn.close()


class LatencyProbe:
    """GET /healthz every 0.1 s while the phase runs: how long requests wait for the event
    loop (and the GIL) while the server ingests and indexes."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.seconds: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async with httpx.AsyncClient(base_url=self.base_url, timeout=60, trust_env=False) as c:
            while True:
                sent = time.perf_counter()
                await c.get("/healthz")
                self.seconds.append(time.perf_counter() - sent)
                await asyncio.sleep(0.1)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> dict[str, object]:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
                await self._task
        ordered = sorted(self.seconds)
        if not ordered:
            return {}
        ms = [round(1000 * ordered[int(q * (len(ordered) - 1))], 1) for q in (0.5, 0.99, 1.0)]
        return {"healthz_ms_p50_p99_max": ms, "healthz_probes": len(ordered)}


# --------------------------------------------------------------------------------------------
# GraphQL: sequential ingestArticles calls
# --------------------------------------------------------------------------------------------


def graphql_bodies(items: Sequence[dict[str, object]], batch: int) -> list[bytes]:
    return [
        orjson.dumps({"query": INGEST_MUTATION, "variables": {"articles": items[i : i + batch]}})
        for i in range(0, len(items), batch)
    ]


async def run_graphql(base_url: str, bodies: list[bytes], result: PhaseResult) -> None:
    timeout = httpx.Timeout(600.0)
    latencies: list[float] = []
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout, trust_env=False) as client:
        try:
            for body in bodies:
                sent = time.perf_counter()
                response = await client.post(
                    "/graphql", content=body, headers={"content-type": "application/json"}
                )
                latencies.append(time.perf_counter() - sent)
                answer = orjson.loads(response.content)
                if response.status_code != 200 or answer.get("errors"):
                    raise SystemExit(
                        f"ingestArticles failed: HTTP {response.status_code} "
                        f"{str(answer.get('errors'))[:500]}"
                    )
                for item in answer["data"]["ingestArticles"]:
                    result.statuses[item["status"]] += 1
                    if item["status"] == "REJECTED" and "first_rejection" not in result.extra:
                        result.extra["first_rejection"] = item["errors"]
                result.articles = sum(result.statuses.values())
        finally:
            result.seconds = time.perf_counter() - started
    if latencies:
        ordered = sorted(latencies)
        result.extra["call_s_p50_max"] = [
            round(ordered[len(ordered) // 2], 2),
            round(ordered[-1], 2),
        ]


# --------------------------------------------------------------------------------------------
# The floor: the stored rows COPY'd into the real tables of a fresh copy
# --------------------------------------------------------------------------------------------

LINK_COLUMNS: Final = ("article_id", "entity_id", "salience", "mention_count", "published_at")


@dataclass(slots=True)
class FloorRows:
    columns: tuple[str, ...]
    articles: list[tuple[object, ...]]  # ordered by id
    links: list[tuple[object, ...]]  # ordered by article id
    urls: int


async def read_stored_rows(dsn: str, after_id: int) -> FloorRows:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    try:
        columns = tuple(
            r["attname"]
            for r in await conn.fetch(
                "SELECT attname FROM pg_attribute WHERE attrelid = 'articles'::regclass "
                "AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
            )
        )
        select = ", ".join(_quote(c) for c in columns)
        articles = [
            tuple(r)
            for r in await conn.fetch(
                f"SELECT {select} FROM articles WHERE id > $1 ORDER BY id", after_id
            )
        ]
        links = [
            tuple(r)
            for r in await conn.fetch(
                f"SELECT {', '.join(LINK_COLUMNS)} FROM article_entities WHERE article_id > $1 "
                "ORDER BY article_id, entity_id",
                after_id,
            )
        ]
        urls: int = await conn.fetchval(
            "SELECT count(*) FROM article_urls WHERE article_id > $1", after_id
        )
    finally:
        await conn.close()
    return FloorRows(columns, articles, links, urls)


async def run_floor(
    dsn: str, rows: FloorRows, connections: int, chunk: int, result: PhaseResult, meter: Meter
) -> None:
    id_at = rows.columns.index("id")
    ids = [int(str(a[id_at])) for a in rows.articles]
    link_ids = [int(str(link[0])) for link in rows.links]
    chunks = []
    for start in range(0, len(rows.articles), chunk):
        part = rows.articles[start : start + chunk]
        low = bisect.bisect_left(link_ids, ids[start])
        high = bisect.bisect_right(link_ids, ids[min(start + chunk, len(ids)) - 1])
        chunks.append((part, rows.links[low:high]))
    conns: list[asyncpg.Connection[Any]] = [
        await asyncpg.connect(dsn, server_settings=dict(SESSION_SETTINGS))
        for _ in range(connections)
    ]
    retries = 0

    async def load(conn: asyncpg.Connection[Any], mine: list[Any]) -> None:
        nonlocal retries
        for articles, links in mine:
            for attempt in range(5):
                try:
                    async with conn.transaction():
                        await conn.copy_records_to_table(
                            "articles", records=articles, columns=rows.columns
                        )
                        await conn.copy_records_to_table(
                            "article_entities", records=links, columns=LINK_COLUMNS
                        )
                    result.articles += len(articles)
                    break
                except asyncpg.DeadlockDetectedError:
                    # The counter triggers of two parallel transactions update entities rows.
                    retries += 1
                    if attempt == 4:
                        raise

    try:
        await meter.begin()
        started = time.perf_counter()
        await asyncio.gather(*(load(conn, chunks[i::connections]) for i, conn in enumerate(conns)))
        result.seconds = time.perf_counter() - started
        # Since migration 0011 the triggers leave counter deltas, which a server folds in
        # the background: the fold is timed apart, so the floor stays the raw load.
        if await pending_counts(conns[0]):
            folded = time.perf_counter()
            async with conns[0].transaction():
                for statement in FOLD_DELTAS:
                    await conns[0].execute(statement)
            result.extra["fold_s"] = round(time.perf_counter() - folded, 2)
    finally:
        for conn in conns:
            await conn.close()
    result.statuses["COPIED"] = result.articles
    result.extra["links"] = len(rows.links)
    result.extra["deadlock_retries"] = retries


# --------------------------------------------------------------------------------------------
# py-spy
# --------------------------------------------------------------------------------------------

PROFILE_GROUPS: Final = (
    ("language detection (detect_language)", "detect_language (service/ingest/language.py"),
    ("entity linking (Linker.link)", "link (service/ingest/linking.py"),
    ("HTML/text reduction (plain_text)", "plain_text (service/ingest/text.py"),
    ("URL canonicalisation", "canonicalize_url (service/ingest/normalize.py"),
    ("content hash", "content_hash (service/ingest/normalize.py"),
    ("validation + row building (prepare, total)", "prepare (service/ingest/pipeline.py"),
    ("storing: _write (total, incl. awaiting PostgreSQL)", "_write (service/ingest/pipeline.py"),
    ("rows to jsonb (writes._json)", "_json (service/db/writes.py"),
    ("NDJSON line decoding (stream._decode)", "_decode (service/ingest/stream.py"),
    ("answer lines (stream.result_line)", "result_line (service/ingest/stream.py"),
    ("asyncpg (any frame)", "(asyncpg/"),
    ("HTTP protocol (uvicorn/protocols)", "(uvicorn/protocols/"),
)
# A complete stack starts at the thread's entry point; py-spy --nonblocking sometimes
# unwinds only the innermost frames, which then count for their own frame but no group.
STACK_ROOTS: Final = ("<module> (", "Thread._bootstrap (")


def summarise_profile(path: Path, rate: int, articles: int) -> list[str]:
    """Collapsed py-spy stacks: per group and top self frames, in µs per article."""
    groups: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = partial = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = stack.split(";")
        if frames[0].startswith(("thread", "process")):
            thread, frames = frames[0], frames[1:]
            threads["event loop thread" if "MainThread" in thread else "worker threads"] += count
        if not frames or not frames[0].startswith(STACK_ROOTS):
            partial += count
        for label, needle in PROFILE_GROUPS:
            if any(needle in f for f in frames):
                groups[label] += count
        self_time[re.sub(r":\d+\)$", ")", frames[-1]) if frames else "(no frames)"] += count
    if not total or not articles:
        return ["(no samples)"]

    def us(count: int) -> str:
        return f"{1e6 * count / rate / articles:8.1f} µs/article"

    out = [f"py-spy: {total:,} samples at {rate}/s = {total / rate:.1f} s on CPU (all threads)"]
    out += [f"  {name:<52} {us(count)}  {100 * count / total:5.1f}%" for name, count in
            threads.most_common()]  # fmt: skip
    out.append(f"  {'of which partial stacks (counted in no group)':<52} {us(partial)}  "
               f"{100 * partial / total:5.1f}%")  # fmt: skip
    out.append("  by what the stack contains (groups overlap):")
    out += [f"  {label:<52} {us(count)}  {100 * count / total:5.1f}%" for label, count in
            sorted(groups.items(), key=lambda kv: -kv[1])]  # fmt: skip
    out.append("  top frames by own time:")
    for frame, count in self_time.most_common(15):
        out.append(f"    {frame[:90]:<90} {us(count)}  {100 * count / total:5.1f}%")
    return out


# --------------------------------------------------------------------------------------------
# Orchestration
# --------------------------------------------------------------------------------------------


def _phase_line(r: PhaseResult) -> str:
    j = r.as_json()
    statuses = ",".join(f"{k}={v}" for k, v in sorted(r.statuses.items()))
    loads = j["load_1m"]
    assert isinstance(loads, list)
    return (
        f"{r.name:<14} {r.articles:>8,} {r.seconds:>8.1f} {r.rate:>10,.0f} "
        f"{j['app_cpu_us_per_article']:>9} {j['db_cpu_us_per_article']:>9} "
        f"{j['other_cores']:>6} {loads[0]:>5.2f}/{loads[1]:>5.2f}  {statuses}"
        + ("  ABORTED" if r.aborted else "")
        + (f"  {r.note}" if r.note else "")
    )


async def _max_article_id(dsn: str) -> int:
    conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
    try:
        top: int = await conn.fetchval("SELECT coalesce(max(id), 0) FROM articles")
        return top
    finally:
        await conn.close()


class Run:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.created: list[str] = []
        self.results: dict[str, PhaseResult] = {}
        self.servers: dict[str, Server] = {}
        self.rss_kib: dict[str, int] = {}
        self.profile: list[str] = []

    def phase_dsn(self, phase: str) -> tuple[str, str]:
        name = f"{_database_name(self.args.dsn)}_{phase}"
        return _with_database(self.args.dsn, name), name

    async def fresh_copy(self, phase: str) -> tuple[str, str]:
        dsn, name = self.phase_dsn(phase)
        self.created.append(name)
        seconds = await copy_database(self.args.dsn, name, _database_name(self.args.dsn))
        await checkpoint(self.args.dsn)
        print(f"\n[{phase}] fresh copy {name} in {seconds:.1f}s, checkpoint done", flush=True)
        return dsn, name

    async def service_phase(
        self, phase: str, items: Sequence[dict[str, object]], prefill_top: int
    ) -> str:
        args = self.args
        dsn, name = await self.fresh_copy(phase)
        result = PhaseResult(phase)
        self.results[phase] = result
        if phase == "ndjson":
            payload: list[bytes] = ndjson_chunks(items)
            print(f"  {sum(map(len, payload)) / 1e6:,.0f} MB of NDJSON", flush=True)
        else:
            payload = graphql_bodies(items, args.graphql_batch)
            print(
                f"  {len(payload)} calls, {sum(map(len, payload)) / len(payload) / 1e6:.1f} MB "
                "each",
                flush=True,
            )
        admin = await _admin(args.dsn)
        profiler: subprocess.Popen[bytes] | None = None
        try:
            async with server(dsn, phase) as running:
                self.servers[phase] = running
                meter = Meter(admin, name, running.proc.pid)
                if args.profile and phase == "ndjson":
                    profiler = start_profiler(args, running.proc.pid)
                    meter.helper_pids.append(profiler.pid)
                probe = LatencyProbe(running.base_url)
                await meter.begin()
                probe.start()
                started = time.perf_counter()
                try:
                    async with asyncio.timeout(args.phase_timeout):
                        if phase == "ndjson":
                            await run_ndjson(running.base_url, payload, len(items), result)
                        else:
                            await run_graphql(running.base_url, payload, result)
                except TimeoutError:
                    result.aborted = True
                    result.seconds = float(args.phase_timeout)
                    result.articles = sum(result.statuses.values())
                acknowledged = await meter.read()
                # Related stories are indexed after commit: the phase is "fully indexed" when
                # the queue is empty; the server's CPU meanwhile is the indexer's.
                backlog, deltas, indexed_s = await wait_indexed(dsn, started, args.phase_timeout)
                await meter.end(result)
                result.extra.update(await probe.stop())
                indexed = PhaseResult(f"{phase}+index", result.articles)
                indexed.seconds = indexed_s or 0.0
                indexed.statuses = result.statuses
                indexed.app_cpu, indexed.db_cpu = result.app_cpu, result.db_cpu
                indexed.other_cpu = result.other_cpu
                indexed.load_start, indexed.load_max = result.load_start, result.load_max
                indexed.load_end = result.load_end
                indexed.note = "" if indexed_s is not None else "queue not drained in time"
                # The stored related lists catch up later (their refresher steps back while
                # the process ingests): what is left to re-rank when indexing is done.
                indexed.extra = {
                    "queue_at_ack": backlog,
                    "count_deltas_at_ack": deltas,
                    "refresh_log": await refresh_log_depth(dsn),
                }
                # The acknowledged figures are CPU up to the last answer.
                result.app_cpu, result.db_cpu = acknowledged["app"], acknowledged["db"]
                result.extra["queue_at_ack"] = backlog
                result.extra["count_deltas_at_ack"] = deltas
                self.results[indexed.name] = indexed
                if profiler is not None:
                    self.profile = stop_profiler(args, profiler, result.articles)
                self.rss_kib[phase] = vm_hwm_kib(running.proc.pid) or 0
                running.scan_log()
                result.extra["server_peak_rss_mib"] = round(self.rss_kib[phase] / 1024)
                children = [vm_hwm_kib(pid) or 0 for pid in _descendants(running.proc.pid)]
                if children:  # the indexer process (NEWSGRAPH_RELATED_INDEXER=process)
                    result.extra["indexer_peak_rss_mib"] = round(max(children) / 1024)
                result.extra["linker_builds"] = running.linker_builds
        finally:
            if profiler is not None and profiler.poll() is None:
                profiler.kill()
            await admin.close()
        stored = await _max_article_id(dsn)
        conn: asyncpg.Connection[Any] = await asyncpg.connect(dsn)
        try:
            count = await conn.fetchval("SELECT count(*) FROM articles WHERE id > $1", prefill_top)
            links = await conn.fetchval(
                "SELECT count(*) FROM article_entities WHERE article_id > $1", prefill_top
            )
        finally:
            await conn.close()
        result.extra["stored_articles"] = count
        result.extra["links_per_article"] = round(links / count, 2) if count else 0.0
        print(f"  {_phase_line(result)}", flush=True)
        print(f"  {_phase_line(self.results[phase + '+index'])}", flush=True)
        print(
            f"  queue at the last answer {result.extra['queue_at_ack']:,} (counter deltas "
            f"{result.extra['count_deltas_at_ack']:,}); related-lists log "
            f"when indexed {self.results[phase + '+index'].extra['refresh_log']:,} rows; "
            f"/healthz p50/p99/max {result.extra.get('healthz_ms_p50_p99_max')} ms",
            flush=True,
        )
        print(f"  stored {count:,} articles (max id {stored:,}), {links:,} links", flush=True)
        return dsn

    async def floor_phase(self, phase: str, rows: FloorRows, connections: int) -> None:
        args = self.args
        dsn, name = await self.fresh_copy(phase)
        result = PhaseResult(phase)
        self.results[phase] = result
        admin = await _admin(args.dsn)
        try:
            meter = Meter(admin, name, os.getpid())
            try:
                async with asyncio.timeout(args.phase_timeout):
                    await run_floor(dsn, rows, connections, args.floor_chunk, result, meter)
            except TimeoutError:
                result.aborted = True
                result.seconds = float(args.phase_timeout)
            await meter.end(result)
        finally:
            await admin.close()
        print(f"  {_phase_line(result)}", flush=True)

    async def main(self) -> int:
        args = self.args
        now = (
            datetime.fromisoformat(args.now).astimezone(UTC)
            if args.now
            else datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        )
        phases = [p.strip() for p in args.phases.split(",") if p.strip()]
        print(
            f"bench/ingest.py: {args.articles:,} articles per phase, prefill {args.prefill:,}, "
            f"phases {','.join(phases)}, seed {args.seed}, now {now:%Y-%m-%d}; "
            f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}",
            flush=True,
        )
        try:
            base = await prepare_base(args, self.created)
            prefill_top = await _max_article_id(base)
            started = time.perf_counter()
            catalogue = await load_world(base, args.seed, 2 * args.articles, now)
            ndjson_items, graphql_items = build_inputs(catalogue, args.seed, args.articles)
            del catalogue
            print(
                f"inputs built in {time.perf_counter() - started:.1f}s: "
                f"{describe_inputs(ndjson_items)}",
                flush=True,
            )
            rows: FloorRows | None = None
            if "ndjson" in phases:
                ndjson_dsn = await self.service_phase("ndjson", ndjson_items, prefill_top)
                rows = await read_stored_rows(ndjson_dsn, prefill_top)
                print(
                    f"  floor rows: {len(rows.articles):,} articles, {len(rows.links):,} links "
                    f"({len(rows.links) / max(len(rows.articles), 1):.2f}/article); the service "
                    f"also wrote {rows.urls:,} article_urls rows",
                    flush=True,
                )
                if not args.keep:
                    await drop_database(args.dsn, self.phase_dsn("ndjson")[1])
            del ndjson_items
            if "graphql" in phases:
                await self.service_phase("graphql", graphql_items, prefill_top)
                if not args.keep:
                    await drop_database(args.dsn, self.phase_dsn("graphql")[1])
            del graphql_items
            if "floor" in phases:
                if rows is None:
                    raise SystemExit("the floor needs the rows of the ndjson phase")
                for connections in (1, 2):
                    await self.floor_phase(f"floor{connections}", rows, connections)
                    if not args.keep:
                        await drop_database(args.dsn, self.phase_dsn(f"floor{connections}")[1])
            self.report()
            return 0
        finally:
            if not args.keep:
                for name in reversed(self.created):
                    with contextlib.suppress(Exception):
                        await drop_database(args.dsn, name)
                print(f"dropped {', '.join(dict.fromkeys(self.created)) or 'nothing'}")
            else:
                print(f"kept {', '.join(dict.fromkeys(self.created))}")

    def report(self) -> None:
        header = (
            f"{'phase':<14} {'articles':>8} {'seconds':>8} {'art/s':>10} {'app µs/a':>9} "
            f"{'db µs/a':>9} {'other':>6} {'load start/max':>11}  statuses"
        )
        print("\n" + header + "\n" + "-" * len(header))
        for result in self.results.values():
            print(_phase_line(result))
        rates = {name: r.rate for name, r in self.results.items()}
        ratios: dict[str, float | None] = {}

        def ratio(top: str, bottom: str) -> float | None:
            if rates.get(top) and rates.get(bottom):
                return round(rates[top] / rates[bottom], 3)
            return None

        ratios["ndjson/floor1"] = ratio("ndjson", "floor1")
        ratios["ndjson/floor2"] = ratio("ndjson", "floor2")
        ratios["ndjson+index/floor2"] = ratio("ndjson+index", "floor2")
        ratios["graphql/floor2"] = ratio("graphql", "floor2")
        ratios["graphql+index/floor2"] = ratio("graphql+index", "floor2")
        ratios["graphql/ndjson"] = ratio("graphql", "ndjson")
        print(
            "\nratios: "
            + ", ".join(
                f"{k} {100 * v:.0f}%" if v is not None else f"{k} n/a" for k, v in ratios.items()
            )
            + "  (goal: ndjson/floor2 >= 50%)"
        )
        for phase, running in self.servers.items():
            print(
                f"server ({phase}): peak RSS (VmHWM) {self.rss_kib.get(phase, 0) / 1024:,.0f} "
                f"MiB; entity linker {running.linker_surfaces:,} surfaces built in "
                f"{running.linker_build_s:.2f}s (first ingest waited {running.linker_warmup_s:.1f}"
                f"s), {running.linker_builds} build(s) in all; log {running.log}"
            )
            indexer_rss = self.results[phase].extra.get("indexer_peak_rss_mib")
            if indexer_rss is not None:
                print(f"server ({phase}): its indexer process's peak RSS {indexer_rss:,} MiB")
        print(
            "columns: app µs/a = CPU of the server process and its indexer process (floor: "
            "this process) per article; "
            "db µs/a = CPU of the phase's PostgreSQL client backends per article; other = "
            "cores busy with anything else (other processes; PostgreSQL background writers "
            "excluded); load = 1-min load average at the start / highest during the phase. "
            "A phase's rate is acknowledged articles (the last answer); its +index row runs "
            "until the related-stories queue is empty (from the same start), with the CPU "
            "up to then"
        )
        print(f"server settings changed for the bench: {SERVER_OVERRIDES}")
        if self.profile:
            print("\n" + "\n".join(self.profile))
        one, five, fifteen = os.getloadavg()
        print(
            f"load average at the end: {one:.2f} {five:.2f} {fifteen:.2f}; {os.cpu_count()} cores"
        )
        figures = {
            "articles": self.args.articles,
            "prefill": self.args.prefill,
            "rates": {k: round(v, 1) for k, v in rates.items()},
            "ratios": ratios,
            "server_peak_rss_mib": {k: round(v / 1024) for k, v in self.rss_kib.items()},
            "linker": {
                k: {
                    "surfaces": s.linker_surfaces,
                    "build_s": s.linker_build_s,
                    "warmup_s": round(s.linker_warmup_s, 2),
                    "builds": s.linker_builds,
                }
                for k, s in self.servers.items()
            },
            "phases": [r.as_json() for r in self.results.values()],
            "load_end": [round(one, 2), round(five, 2), round(fifteen, 2)],
            "cores": os.cpu_count(),
        }
        print(json.dumps(figures, default=str, separators=(",", ":")))


def start_profiler(args: argparse.Namespace, pid: int) -> subprocess.Popen[bytes]:
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    out = Path(args.profile) / "ndjson.pyspy.txt"
    out.parent.mkdir(parents=True, exist_ok=True)
    command = [
        spy, "record", "--pid", str(pid), "--rate", str(args.profile_rate), "--nonblocking",
        "--threads", "--format", "raw", "--output", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    if proc.poll() is not None:
        raise SystemExit(f"py-spy did not start ({' '.join(command)})")
    print(f"  py-spy recording pid {pid} into {out}", flush=True)
    return proc


def stop_profiler(
    args: argparse.Namespace, proc: subprocess.Popen[bytes], articles: int
) -> list[str]:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        return ["py-spy did not stop"]
    return summarise_profile(Path(args.profile) / "ndjson.pyspy.txt", args.profile_rate, articles)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Bulk ingest throughput against the COPY floor.")
    parser.add_argument("--dsn", required=True, help="postgresql://.../newsgraph_bench_<name>")
    parser.add_argument("--articles", type=int, default=100_000, help="per phase (100000)")
    parser.add_argument("--prefill", type=int, default=1_000_000, help="articles before (1M)")
    parser.add_argument("--entities", type=int, help="catalogue size when generating")
    parser.add_argument("--template", default=TEMPLATE, help=f"database to copy ({TEMPLATE})")
    parser.add_argument("--generate", action="store_true", help="generate instead of copying")
    parser.add_argument("--seed", type=int, default=1, help="seed of the articles (1)")
    parser.add_argument("--now", help="newest publication time, ISO 8601 (default: today UTC)")
    parser.add_argument(
        "--phases", default="ndjson,graphql,floor", help="subset of ndjson,graphql,floor"
    )
    parser.add_argument("--graphql-batch", type=int, default=1000, help="articles per call")
    parser.add_argument("--floor-chunk", type=int, default=5000, help="articles per COPY txn")
    parser.add_argument("--phase-timeout", type=float, default=900.0, help="seconds (900)")
    parser.add_argument("--profile", metavar="DIR", help="py-spy the NDJSON server into DIR")
    parser.add_argument("--profile-rate", type=int, default=100, help="py-spy samples/s (100)")
    parser.add_argument("--keep", action="store_true", help="keep the databases")
    args = parser.parse_args(argv)
    name = _database_name(args.dsn)
    if not name.startswith("newsgraph_bench") or name == args.template:
        parser.error("--dsn must name a database newsgraph_bench_* other than the template")
    if args.articles < 1 or args.graphql_batch < 1 or args.floor_chunk < 1:
        parser.error("--articles, --graphql-batch and --floor-chunk must be at least 1")
    return asyncio.run(Run(args).main())


if __name__ == "__main__":
    sys.exit(main())
