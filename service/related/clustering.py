"""Related-stories indexing: signals, wire copies and incremental story clusters.

`index_articles` runs in the background indexer's transaction (`service.related.indexer`),
after commit of the ingest that queued the articles, never inside the ingest transaction;
the same transaction deletes the ids from the queue, so signals and queue commit (or roll
back) together. Its cost is a fixed number of statements per batch plus the text features
(a thread, off the event loop).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Final

import numpy as np

from service.db import stories
from service.db.pool import Writer
from service.related import features as F

__all__ = ["STORY_SIMILARITY", "WrittenArticle", "index_articles"]

POSTING_TERMS: Final = 16
# A new article joins the story of its most similar recent neighbour when the TF-IDF cosine
# reaches STORY_SIMILARITY; a second story that close as well is merged into the first.
STORY_SIMILARITY: Final = 0.35
MERGE_SIMILARITY: Final = 0.6
STORY_WINDOW: Final = timedelta(days=3)
CLUSTER_TERMS: Final = 6
CLUSTER_PER_TERM: Final = 15


@dataclass(frozen=True, slots=True)
class WrittenArticle:
    article_id: int
    created: bool  # first indexing: its terms count as a new document (document frequencies)
    source_id: int
    language: str
    title: str
    summary: str | None
    body: str | None
    published_at: datetime
    estimated: bool  # published_at was estimated (no date given)
    features: F.TextFeatures | None = None  # computed here when not given


def _features(articles: Sequence[WrittenArticle]) -> list[F.TextFeatures]:
    return [F.text_features(a.title, a.summary, a.body) for a in articles]


async def index_articles(w: Writer, articles: Sequence[WrittenArticle]) -> None:
    """Compute and store the signals of these (new or changed) articles, then find their
    originals (wire copies) and stories."""
    if not articles:
        return
    ready = [a.features for a in articles if a.features is not None]
    features = (
        ready if len(ready) == len(articles) else await asyncio.to_thread(_features, articles)
    )
    increments: Counter[int] = Counter()
    for article, feature in zip(articles, features, strict=True):
        increments.update(dict.fromkeys(feature.counts, 1 if article.created else 0))
    df, documents = await stories.bump_term_stats(
        w, dict(increments), sum(a.created for a in articles)
    )
    vectors = [F.vector(f.counts, df, documents) for f in features]
    rows = [
        stories.SignalRow(
            article_id=a.article_id,
            source_id=a.source_id,
            language=a.language,
            published_at=a.published_at,
            dated=not a.estimated,
            terms=list(v),
            weights=list(v.values()),
            tfs=[F.tf(f.counts[t]) for t in v],
            signature=f.signature or None,
            postings=list(v)[:POSTING_TERMS],
            bands=list(f.bands),
        )
        for a, f, v in zip(articles, features, vectors, strict=True)
    ]
    # Postings and band keys first: the batch's copies and stories are found through them,
    # its members described from memory, and each signals row is then written once, with its
    # story and original (an UPDATE of fresh rows cost as much as their INSERT, and a second
    # entry in the related-lists log per article).
    await stories.write_postings(w, rows)
    stored = await stories.fetch_story_ids(w, [a.article_id for a in articles])
    wire = await stories.wire_sources(w, [a.source_id for a in articles])
    batch = {
        a.article_id: stories.BatchMember(
            f.signature or None, a.published_at, not a.estimated, a.source_id in wire
        )
        for a, f in zip(articles, features, strict=True)
    }
    originals = await _find_originals(
        w,
        articles,
        {a.article_id: f for a, f in zip(articles, features, strict=True)},
        batch,
        wire,
        fresh=set(batch) - set(stored),
    )
    # The batch's vectors as the database will hold them (real): what its neighbours read.
    vector_of = {
        a.article_id: dict(
            zip(v, np.asarray(list(v.values()), dtype=np.float32).tolist(), strict=True)
        )
        for a, v in zip(articles, vectors, strict=True)
    }
    parents = [
        (a.article_id, a.published_at, list(v)[:CLUSTER_TERMS])
        for a, v in zip(articles, vectors, strict=True)
        if stored.get(a.article_id) is None
    ]
    own = {a.article_id: v for a, v in zip(articles, vectors, strict=True)}
    by_id = {a.article_id: a for a in articles}
    assigned, merges = await _cluster(
        w, batch, [by_id[p[0]] for p in parents], parents, own, vector_of, originals
    )
    await stories.write_signals(
        w,
        [
            replace(
                row,
                story_id=assigned.get(row.article_id),
                duplicate_of=originals.get(row.article_id)
                if row.article_id not in stored and originals.get(row.article_id) != row.article_id
                else None,
            )
            for row in rows
        ],
    )
    await stories.refresh_stories(w, assigned.values())
    for survivor, others in merges.items():
        await stories.merge_stories(w, survivor, others)


def _original_key(
    wire: bool, dated: bool, published_at: datetime, article_id: int
) -> tuple[bool, bool, datetime, int]:
    # The wire service's copy first, then the earliest real date; estimated dates come last.
    return (not wire, not dated, published_at, article_id)


async def _find_originals(
    w: Writer,
    articles: Sequence[WrittenArticle],
    features: dict[int, F.TextFeatures],
    batch: dict[int, stories.BatchMember],
    wire: set[int],
    *,
    fresh: set[int],
) -> dict[int, int]:
    """Find near-identical copies; returns article → its original. Stored articles are
    marked here; the `fresh` ones (no signals yet) take theirs when their row is written."""
    with_bands = [a for a in articles if features[a.article_id].bands]
    if not with_bands:
        return {}
    candidates = await stories.fetch_duplicate_candidates(
        w, batch, [a.article_id for a in with_bands]
    )
    by_article: dict[int, list[stories.DuplicateCandidate]] = {}
    for c in candidates:
        by_article.setdefault(c.article_id, []).append(c)
    root: dict[int, int] = {}  # what this batch decided, ahead of the stored duplicate_of
    originals: dict[int, int] = {}
    repoint: dict[int, int] = {}
    ordered = sorted(
        with_bands,
        key=lambda a: _original_key(
            a.source_id in wire, not a.estimated, a.published_at, a.article_id
        ),
    )
    for article in ordered:
        signature = features[article.article_id].signature
        copies = [
            c for c in by_article.get(article.article_id, [])
            if F.jaccard(signature, c.signature) >= F.DUPLICATE_THRESHOLD
        ]  # fmt: skip
        if not copies:
            continue
        mine = _original_key(
            article.source_id in wire,
            not article.estimated,
            article.published_at,
            article.article_id,
        )
        best = min(copies, key=lambda c: _original_key(c.wire, c.dated, c.published_at, c.other_id))
        if _original_key(best.wire, best.dated, best.published_at, best.other_id) < mine:
            target = root.get(best.other_id, best.duplicate_of or best.other_id)
            originals[article.article_id] = target
            root[article.article_id] = target
        else:
            # This copy is the original of the group now: the others follow it.
            for c in copies:
                old = root.get(c.other_id, c.duplicate_of or c.other_id)
                if old != article.article_id:
                    repoint[old] = article.article_id
                    originals[old] = article.article_id
                    root[old] = article.article_id
            root[article.article_id] = article.article_id
    await stories.set_duplicate_of(
        w, {a: o for a, o in originals.items() if a not in fresh}, repoint
    )
    return originals


async def _cluster(
    w: Writer,
    batch: dict[int, stories.BatchMember],
    articles: Sequence[WrittenArticle],
    parents: Sequence[tuple[int, datetime, list[int]]],
    vectors: dict[int, dict[int, float]],
    batch_vectors: dict[int, dict[int, float]],
    originals: dict[int, int],
) -> tuple[dict[int, int], dict[int, list[int]]]:
    """The story of each of `articles` (new stories are created), and the stories to merge
    (survivor → others). `vectors` are the articles' own; `batch_vectors` the batch's as
    its neighbours see them (stored precision)."""
    if not articles:
        return {}, {}
    # A copy joins its original's story: no neighbours to look for (thousands of copies of
    # one wire story cost one lookup).
    copies = {a.article_id: originals[a.article_id] for a in articles if a.article_id in originals}
    stored = await stories.fetch_story_ids(w, list(copies.values())) if copies else {}
    candidates, neighbour_vectors = await stories.fetch_cluster_candidates(
        w,
        batch,
        [p for p in parents if p[0] not in copies],
        STORY_WINDOW,
        CLUSTER_PER_TERM,
    )
    neighbour_vectors.update(batch_vectors)
    assigned: dict[int, int] = {}
    renamed: dict[int, int] = {}  # merged story → survivor, within this batch

    def live(story: int) -> int:
        while story in renamed:
            story = renamed[story]
        return story

    # A story started in this batch has a placeholder id (negative) until it is created, so
    # later articles of the batch can join it.
    seeds: list[WrittenArticle] = []
    for article in sorted(articles, key=lambda a: (a.published_at, a.article_id)):
        original = copies.get(article.article_id)
        if original is not None:
            story_of_original = assigned.get(original, stored.get(original))
            if story_of_original is not None:
                assigned[article.article_id] = story_of_original
                continue
        vector = vectors[article.article_id]
        terms = vector.keys()
        best: dict[int, float] = {}
        # All within the window: the postings query bounds the neighbours by date.
        for other, story in candidates.get(article.article_id, ()):
            story = assigned.get(other, story)
            if story is None:
                continue
            if other == original:
                similarity = 1.0
            else:
                neighbour = neighbour_vectors.get(other, {})
                # The shared terms found in C (set intersection), then a short sum: most of
                # the ~100 terms of two vectors are not shared.
                similarity = sum(vector[t] * neighbour[t] for t in terms & neighbour.keys())
            story = live(story)
            best[story] = max(best.get(story, 0.0), similarity)
        ranked = sorted(
            ((s, story) for story, s in best.items() if s >= STORY_SIMILARITY), reverse=True
        )
        if not ranked:
            seeds.append(article)
            assigned[article.article_id] = -len(seeds)
            continue
        survivor = ranked[0][1]
        assigned[article.article_id] = survivor
        others = {story for s, story in ranked[1:] if s >= MERGE_SIMILARITY}
        for other in others:
            renamed[other] = survivor
    created = await stories.create_stories(w, [(a.title, a.published_at) for a in seeds])
    real = {-(i + 1): story for i, story in enumerate(created)}

    def final(story: int) -> int:
        story = live(story)
        return real.get(story, story)

    # Each story merged in this batch goes into the story its chain of merges ends in (the
    # merged one's own id, not where it was renamed to: that is the survivor itself).
    merged: dict[int, set[int]] = {}
    for story in renamed:
        into, source = final(story), real.get(story, story)
        if source != into:
            merged.setdefault(into, set()).add(source)
    return {a: final(s) for a, s in assigned.items()}, {
        into: sorted(sources) for into, sources in merged.items()
    }
