"""Related stories of articles: bounded candidates from the db layer, scored here.

Score of a candidate (0..1, higher is closer):
- text: TF-IDF cosine of the two articles, after one step of pseudo-relevance feedback (the
  article's vector plus its three closest candidates', Rocchio style): coverage of one event
  shares the event's particular words, which lifts its members above stories of the same kind;
- time: multiplied by 0.6-1.0 by closeness in time (half-life about two days) when both dates
  are real; an estimated date is "unknown", the neutral middle, never a penalty or a bonus;
- a small bonus per shared entity (up to five) and for membership in the same story.
Relation: DUPLICATE for copies of one text (MinHash, found at ingest), SAME_STORY for the same
story cluster, a cosine of 0.5 or more, or two dated articles within 48 hours that share two
salient entities (or a story-level cosine); RELATED otherwise.
Then: excluded articles and languages are dropped, copies collapse to one per group, other
sources come first, and no outlet follows itself while another one qualifies.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

from service.db import stories
from service.db.pool import Database
from service.related.clustering import STORY_SIMILARITY
from service.related.features import cosine

__all__ = ["RelatedItem", "RelatedQuery", "find_related", "rank"]

CANDIDATE_TERMS: Final = 8
PER_LIST: Final = 40
PARENT_ENTITIES: Final = 5
PER_ENTITY: Final = 20
BY_TERMS: Final = 80
TIME_SCALE_HOURS: Final = 72.0
UNKNOWN_TIME: Final = 0.75
FEEDBACK: Final = 0.7
FEEDBACK_DOCS: Final = 3
# Only the best first-pass candidates are rescored with the expanded vector.
RESCORED: Final = 60
ENTITY_BONUS: Final = 0.02
STORY_BONUS: Final = 0.05
SAME_STORY_TEXT: Final = 0.5
EVENT_GAP: Final = timedelta(hours=48)
# An outlet may follow itself only when no other outlet's item scores at least this share of
# the best remaining score.
DIVERSITY_SHARE: Final = 0.7


@dataclass(frozen=True, slots=True)
class RelatedQuery:
    first: int
    window_days: int
    include_same_source: bool = False
    include_duplicates: bool = False
    exclude: tuple[int, ...] = ()
    languages: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class RelatedItem:
    article_id: int
    score: float
    text_similarity: float
    time_gap_hours: float | None
    relation: str  # SAME_STORY | DUPLICATE | RELATED
    shared_entities: tuple[int, ...]
    source_id: int


def _time_factor(parent: stories.ParentSignals, c: stories.Candidate) -> float:
    if not (parent.dated and c.dated):
        return UNKNOWN_TIME
    gap = abs((c.published_at - parent.published_at).total_seconds()) / 3600
    return 0.6 + 0.4 * math.exp(-gap / TIME_SCALE_HOURS)


def _same_event(parent: stories.ParentSignals, c: stories.Candidate, text: float) -> bool:
    """Close in time and about the same things, though the story clusters have not met (as
    coverage of one event in two languages, whose words differ but whose entities do not)."""
    if not (parent.dated and c.dated) or abs(c.published_at - parent.published_at) > EVENT_GAP:
        return False
    return len(c.shared_entities) >= 2 or text >= STORY_SIMILARITY


def _feedback(
    vector: Mapping[int, float], others: Sequence[Mapping[int, float]]
) -> dict[int, float]:
    centroid = dict(vector)
    for other in others:
        for term, weight in other.items():
            centroid[term] = centroid.get(term, 0.0) + FEEDBACK * weight / len(others)
    norm = math.sqrt(sum(w * w for w in centroid.values())) or 1.0
    return {t: w / norm for t, w in centroid.items()}


def rank(
    parent: stories.ParentSignals, candidates: Sequence[stories.Candidate], query: RelatedQuery
) -> list[RelatedItem]:
    """The related items of one article, best first, at most `query.first`."""
    excluded = set(query.exclude)
    languages = set(query.languages)
    pool = [
        c for c in candidates
        if c.article_id not in excluded
        and (not languages or c.language in languages)
        and (query.include_same_source or c.source_id != parent.source_id)
    ]  # fmt: skip
    if not pool:
        return []
    vector = dict(zip(parent.terms, parent.weights, strict=True))
    vectors = [dict(zip(c.terms, c.weights, strict=True)) for c in pool]
    times = [_time_factor(parent, c) for c in pool]
    first = [cosine(vector, v) for v in vectors]
    order = sorted(range(len(pool)), key=lambda i: -first[i] * times[i])[:RESCORED]
    expanded = _feedback(vector, [vectors[i] for i in order[:FEEDBACK_DOCS]])
    pool = [pool[i] for i in order]
    vectors = [vectors[i] for i in order]
    first = [first[i] for i in order]
    times = [times[i] for i in order]
    parent_root = parent.duplicate_of or parent.article_id
    items = []
    for c, v, text, time in zip(pool, vectors, first, times, strict=True):
        same_story = parent.story_id is not None and c.story_id == parent.story_id
        score = cosine(expanded, v) * time
        score += ENTITY_BONUS * min(len(c.shared_entities), 5) + (STORY_BONUS if same_story else 0)
        if (c.duplicate_of or c.article_id) == parent_root:
            relation = "DUPLICATE"
        elif same_story or text >= SAME_STORY_TEXT or _same_event(parent, c, text):
            relation = "SAME_STORY"
        else:
            relation = "RELATED"
        gap = None
        if parent.dated and c.dated:
            gap = round((c.published_at - parent.published_at).total_seconds() / 3600, 2)
        items.append(
            RelatedItem(
                article_id=c.article_id, score=round(min(score, 1.0), 4),
                text_similarity=round(text, 4), time_gap_hours=gap, relation=relation,
                shared_entities=tuple(c.shared_entities), source_id=c.source_id,
            )
        )  # fmt: skip
    items.sort(key=lambda i: (-i.score, i.article_id))
    if not query.include_duplicates:
        roots = {c.article_id: c.duplicate_of or c.article_id for c in pool}
        seen: set[int] = set()
        collapsed = []
        for item in items:
            root = roots[item.article_id]
            if root not in seen:
                seen.add(root)
                collapsed.append(item)
        items = collapsed
    others = [i for i in items if i.source_id != parent.source_id]
    own = [i for i in items if i.source_id == parent.source_id]
    return (_diversify(others) + own)[: query.first]


def _diversify(items: list[RelatedItem]) -> list[RelatedItem]:
    """No outlet twice in a row while another outlet's item still qualifies."""
    result: list[RelatedItem] = []
    rest = list(items)
    while rest:
        pick = 0
        if result and rest[0].source_id == result[-1].source_id:
            floor = rest[0].score * DIVERSITY_SHARE
            for i, item in enumerate(rest):
                if item.score < floor:
                    break
                if item.source_id != result[-1].source_id:
                    pick = i
                    break
        result.append(rest.pop(pick))
    return result


async def find_related(
    db: Database, parents: Sequence[int], query: RelatedQuery
) -> dict[int, list[RelatedItem]]:
    """Related items of each parent article (two statements, however many parents)."""
    signals = await stories.fetch_signals(db, parents)
    if not signals:
        return {}
    candidates = await stories.fetch_candidates(
        db, sorted(signals), window=timedelta(days=query.window_days),
        terms=CANDIDATE_TERMS, per_list=PER_LIST, entities=PARENT_ENTITIES, by_terms=BY_TERMS,
        per_entity=PER_ENTITY,
    )  # fmt: skip
    by_parent: dict[int, list[stories.Candidate]] = {}
    for c in candidates:
        by_parent.setdefault(c.parent, []).append(c)
    return {p: rank(s, by_parent.get(p, []), query) for p, s in signals.items()}
