"""Entity linking: quality against labelled news, and speed.

    .venv/bin/python bench/linking.py [--data ../shared/data] [--skip-speed] [--million]

Quality. The catalogue is built from `ner_dev.jsonl`: every gold span with a Wikidata id is a
surface of that id; the id's canonical name is its most frequent surface, its kind the most
frequent label, its popularity the number of documents that mention it (the stand-in for
`entities.article_count`). Each document of `entities_gold_dev.jsonl` (its text comes from
`ner_dev.jsonl`; the first line is the title when there are several) is linked, and the
linked (document, Wikidata id) pairs are scored against the gold pairs, per dataset:
  baseline  canonical names only, case-sensitive, whole words (a regex alternation, longest
            name first; a name shared by several ids goes to the most popular);
  linker    `service.ingest.linking.Linker` over all names and aliases.
No rule knows which dataset a document came from. RSS-500 and MSNBC annotate only some
entities (`exhaustive` false), so their precision is a lower bound.

Speed. A catalogue of ~20k surfaces (the gold names above, names mined from half of
`clusters_dev.jsonl` — runs of capitalised words in mid-sentence — with some last names as
aliases, then synthetic names) links the long articles of the other half, each cut to a
title, a two-sentence summary and a ~2 KB body: microseconds per article (best of several
passes), plus build times. `--million` also builds a 1M-surface linker in a worker thread
while the event loop ticks, reporting the build time, memory and the longest loop stall.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import random
import re
import resource
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from service.ingest.linking import Linker, Surface

KINDS: Final = {
    "PER": "PERSON",
    "ORG": "ORGANIZATION",
    "LOC": "PLACE",
    "EVENT": "EVENT",
    "PRODUCT": "PRODUCT",
}

WORD: Final = re.compile(r"[^\W\d_][\w'’.-]*")
SENTENCE_END: Final = re.compile(r"(?<=[.!?])\s+")
# Capitalised in mid-sentence, but not names of entities.
NOT_NAMES: Final = frozenset(
    re.findall(
        r"\w+",
        "mr mrs ms dr monday tuesday wednesday thursday friday saturday sunday january february"
        " march april may june july august september october november december i",
    )
)


@dataclass(frozen=True, slots=True)
class Catalogue:
    surfaces: list[Surface]
    wikidata: dict[int, str]  # entity id -> Wikidata id
    canonical: dict[int, str]  # entity id -> canonical name


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]


def gold_catalogue(ner: Sequence[dict[str, Any]]) -> Catalogue:
    forms: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    labels: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    documents: collections.Counter[str] = collections.Counter()
    for doc in ner:
        seen = set()
        for span in doc["entities"]:
            qid = span.get("wikidata")
            if not qid:
                continue
            forms[qid][doc["text"][span["start"] : span["end"]]] += 1
            labels[qid][span["label"]] += 1
            seen.add(qid)
        documents.update(seen)
    surfaces: list[Surface] = []
    wikidata: dict[int, str] = {}
    canonical: dict[int, str] = {}
    for entity_id, qid in enumerate(sorted(forms, key=lambda q: int(q[1:])), start=1):
        wikidata[entity_id] = qid
        # Most frequent surface; ties go to the longer, then the alphabetically first.
        canonical[entity_id] = min(forms[qid], key=lambda f: (-forms[qid][f], -len(f), f))
        kind = KINDS.get(labels[qid].most_common(1)[0][0], "OTHER")
        surfaces.extend(Surface(entity_id, form, kind, documents[qid]) for form in forms[qid])
    return Catalogue(surfaces, wikidata, canonical)


def split_document(text: str) -> tuple[str, str | None, str | None]:
    """(title, summary, body): the first line is the title when there are several."""
    title, _, rest = text.strip().partition("\n")
    return title, None, rest.strip() or None


class Baseline:
    """Canonical names only, case-sensitive, whole words, longest name first."""

    def __init__(self, catalogue: Catalogue) -> None:
        popularity = {s.entity_id: s.popularity for s in catalogue.surfaces}
        self.by_name: dict[str, int] = {}
        for entity_id, name in catalogue.canonical.items():
            known = self.by_name.get(name)
            if known is None or popularity[entity_id] > popularity[known]:
                self.by_name[name] = entity_id
        names = sorted(self.by_name, key=len, reverse=True)
        self.pattern = re.compile(r"(?<!\w)(?:" + "|".join(map(re.escape, names)) + r")(?!\w)")

    def link(self, text: str) -> set[int]:
        return {self.by_name[m.group()] for m in self.pattern.finditer(text)}


def score(predicted: set[tuple[str, str]], gold: set[tuple[str, str]]) -> tuple[float, ...]:
    hits = len(predicted & gold)
    precision = hits / len(predicted) if predicted else 0.0
    recall = hits / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return precision, recall, f1


def quality(data: Path) -> None:
    ner = read_jsonl(data / "ner_dev.jsonl")
    documents = read_jsonl(data / "entities_gold_dev.jsonl")
    texts = {doc["id"]: doc["text"] for doc in ner}
    catalogue = gold_catalogue(ner)
    baseline = Baseline(catalogue)
    linker = Linker.build(catalogue.surfaces)
    print(
        f"catalogue: {len(catalogue.wikidata)} Wikidata ids, {len(catalogue.surfaces)} surfaces "
        f"({linker.size} linkable)"
    )
    gold: dict[str, set[tuple[str, str]]] = collections.defaultdict(set)
    found: dict[str, dict[str, set[tuple[str, str]]]] = {
        "baseline": collections.defaultdict(set),
        "linker": collections.defaultdict(set),
    }
    exhaustive: dict[str, bool] = {}
    for doc in documents:
        dataset, doc_id = doc["dataset"], doc["id"]
        exhaustive[dataset] = doc["exhaustive"]
        gold[dataset].update((doc_id, qid) for qid in doc["wikidata_ids"])
        text = texts[doc_id]
        found["baseline"][dataset].update(
            (doc_id, catalogue.wikidata[e]) for e in baseline.link(text)
        )
        found["linker"][dataset].update(
            (doc_id, catalogue.wikidata[m.entity_id]) for m in linker.link(*split_document(text))
        )
    print(f"{'dataset':<14} {'docs':>5} {'gold':>5}   {'system':<9} {'P':>6} {'R':>6} {'F1':>6}")
    counts = collections.Counter(doc["dataset"] for doc in documents)
    for dataset in sorted(gold):
        for system in ("baseline", "linker"):
            p, r, f = score(found[system][dataset], gold[dataset])
            note = "" if exhaustive[dataset] else "  (partial gold: P is a lower bound)"
            print(
                f"{dataset:<14} {counts[dataset]:>5} {len(gold[dataset]):>5}   {system:<9} "
                f"{p:>6.3f} {r:>6.3f} {f:>6.3f}{note if system == 'linker' else ''}"
            )


def mined_names(articles: Iterable[dict[str, Any]]) -> list[str]:
    """Runs of capitalised words after a sentence's first word, most frequent first."""
    upper: collections.Counter[str] = collections.Counter()
    lower: collections.Counter[str] = collections.Counter()
    runs: collections.Counter[str] = collections.Counter()
    for article in articles:
        for sentence in SENTENCE_END.split(f"{article['title']}. {article['text']}"):
            words = [w.rstrip(".") for w in WORD.findall(sentence)]
            run: list[str] = []
            for i, word in enumerate([*words, "."]):
                capital = word[:1].isupper()
                (upper if capital else lower)[word.lower()] += 1
                if capital and i > 0 and word.lower() not in NOT_NAMES and len(run) < 4:
                    run.append(word)
                    continue
                if run:
                    runs[" ".join(run)] += 1
                run = []
    return [
        name
        for name, _ in runs.most_common()
        if all(upper[w.lower()] > 2 * lower[w.lower()] for w in name.split())
    ]


def synthetic_name(rng: random.Random) -> str:
    syllables = re.findall(
        r"\w+", "ka lo mi ren sa to vi da ne ro lu ba ta se ri mo an el is or un"
    )
    words = rng.choice((1, 2, 2, 2, 3))
    return " ".join(
        "".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))).capitalize()
        for _ in range(words)
    )


def speed_catalogue(
    base: Sequence[Surface], names: Sequence[str], total: int, rng: random.Random
) -> list[Surface]:
    """`base`, then `names` (30% of those of several words with their last word as an alias,
    at most three entities sharing one), then synthetic names, up to `total` surfaces."""
    surfaces = list(base)
    entity_id = max((s.entity_id for s in surfaces), default=0) + 1
    texts = {s.text for s in surfaces}
    alias_users: collections.Counter[str] = collections.Counter()
    kinds = list(KINDS.values())

    def add(name: str) -> None:
        nonlocal entity_id
        popularity = int(rng.paretovariate(1.2))
        kind = rng.choice(kinds)
        surfaces.append(Surface(entity_id, name, kind, popularity))
        texts.add(name)
        last = name.rsplit(" ", 1)[-1]
        if " " in name and rng.random() < 0.3 and alias_users[last] < 3:
            alias_users[last] += 1
            surfaces.append(Surface(entity_id, last, kind, popularity))
        entity_id += 1

    for name in names:
        if len(surfaces) >= total:
            break
        if name not in texts:
            add(name)
    while len(surfaces) < total:
        name = synthetic_name(rng)
        if name not in texts:
            add(name)
    return surfaces[:total]


def long_articles(articles: Iterable[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(title, two-sentence summary, ~2 KB body) of each article with enough text."""
    result = []
    for article in articles:
        text = article["text"]
        if len(text) < 2500:
            continue
        summary = " ".join(SENTENCE_END.split(text)[:2])
        body = text[len(summary) :].strip()[:2048]
        result.append((article["title"], summary, body))
    return result


def per_article_us(linker: Linker, articles: Sequence[tuple[str, str, str]]) -> float:
    best = float("inf")
    for _ in range(7):
        started = time.perf_counter()
        for article in articles:
            linker.link(*article)
        best = min(best, time.perf_counter() - started)
    return best / len(articles) * 1e6


def speed(data: Path, million: bool) -> None:
    ner = read_jsonl(data / "ner_dev.jsonl")
    clusters = read_jsonl(data / "clusters_dev.jsonl")
    rng = random.Random(20261125)
    gold = gold_catalogue(ner)
    names = mined_names(clusters[0::2])
    articles = long_articles(clusters[1::2])
    chars = sum(sum(map(len, a)) for a in articles) / len(articles)
    print(
        f"\nspeed: {len(articles)} articles of {chars:.0f} chars (title, 2-sentence summary, "
        f"~2 KB body); catalogues of 20,000 surfaces"
    )
    catalogues = {
        "dense: gold + mined names": speed_catalogue(gold.surfaces, names, 20_000, rng),
        "sparse: gold names": speed_catalogue(gold.surfaces, (), 20_000, rng),
        "floor: names never in the text": speed_catalogue((), (), 20_000, rng),
    }
    dense = None
    for label, surfaces in catalogues.items():
        started = time.perf_counter()
        linker = Linker.build(surfaces)
        built = time.perf_counter() - started
        dense = dense or linker
        mentions = sum(len(linker.link(*a)) for a in articles) / len(articles)
        print(
            f"  {label:<32} {per_article_us(linker, articles):6.1f} µs/article, "
            f"{mentions:4.1f} entities/article, built in {built:.2f} s"
        )
    assert dense is not None
    variants = {
        "dense, Latin-1 path (é, ’)": [
            (t, s, b.replace("'", "’") + " Café") for t, s, b in articles
        ],
        "dense, general path (ğ)": [(t, s, b + " Erdoğan") for t, s, b in articles],
    }
    for label, texts in variants.items():
        print(f"  {label:<32} {per_article_us(dense, texts):6.1f} µs/article")
    if million:
        asyncio.run(build_million(catalogues["dense: gold + mined names"], rng))


async def build_million(base: list[Surface], rng: random.Random) -> None:
    surfaces = list(base)
    entity_id = max(s.entity_id for s in surfaces) + 1
    while len(surfaces) < 1_000_000:
        surfaces.append(Surface(entity_id, synthetic_name(rng), "OTHER", 1))
        entity_id += 1
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stall = 0.0
    done = False

    async def tick() -> None:
        nonlocal stall
        while not done:
            started = time.perf_counter()
            await asyncio.sleep(0.001)
            stall = max(stall, time.perf_counter() - started - 0.001)

    ticker = asyncio.create_task(tick())
    started = time.perf_counter()
    linker = await asyncio.to_thread(Linker.build, surfaces)
    built = time.perf_counter() - started
    done = True
    await ticker
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(
        f"  build 1M surfaces in a worker thread: {built:.1f} s, {linker.size} surfaces, "
        f"peak RSS +{(rss_after - rss_before) / 1024:.0f} MB, "
        f"longest event-loop stall {stall * 1000:.0f} ms"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[2] / "shared/data")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--million", action="store_true", help="also build 1M surfaces")
    args = parser.parse_args(argv)
    quality(args.data)
    if not args.skip_speed:
        speed(args.data, args.million)
    return 0


if __name__ == "__main__":
    sys.exit(main())
