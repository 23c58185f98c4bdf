"""Related stories of articles: bounded candidates from the db layer, scored here.

Score of a candidate (0..1, higher is closer), from the best 80 candidates by TF-IDF cosine
× time, each scored with the others as context (pairwise cosines in numpy). Vectors are the
stored terms' frequencies weighed by the IDF of now, give or take a minute (one more statement
for all parents, for the terms whose frequencies were not read in the last DF_CACHE_SECONDS):
weights fixed at indexing would keep the skewed IDF the first articles of a database saw.
- text: TF-IDF cosine of the two articles after one step of pseudo-relevance feedback (the
  article's vector plus its three closest candidates', Rocchio style): coverage of one event
  shares the event's particular words, which lifts its members above stories of the same kind;
- time: that cosine multiplied by 0.6-1.0 by closeness in time (half-life about five days: a
  story develops over a week or more, and a follow-up five days on is still closer than an
  unknown date) when both dates are real; an estimated date is "unknown" (0.75);
- neighbours: mixed in as score = (text + 0.6 · agreement + 0.4 · row agreement) / 2.0;
  agreement is the cosine of the two articles' rows of their ten nearest candidates: coverage
  of one event has the same nearest neighbours, while another event of the same kind (shared
  topic words, other names) has neighbours of its own, so this pushes such hard negatives
  down; row agreement is the cosine of their whole rows of scores, which stays high between
  members of a story far larger than ten (where the nearest ten are a chance draw);
- a small bonus per shared entity (up to five) and for membership in the same story.
Relation: DUPLICATE for copies of one text (MinHash, found at ingest), SAME_STORY for the same
story cluster, a cosine of 0.5 or more, or two dated articles within 48 hours that share two
salient entities (or a story-level cosine); RELATED otherwise.
Then: excluded articles and languages are dropped, copies collapse to one per group, other
sources come first, and no outlet follows itself while another one qualifies.
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from service.db import stories
from service.db.pool import Database
from service.related.clustering import STORY_SIMILARITY

__all__ = ["Idf", "RelatedItem", "RelatedQuery", "fetch_candidates", "find_related", "rank"]

# One BLAS thread in every process that ranks: its requests already run side by side on few
# cores, and for products this small (80 × ~600 terms) OpenBLAS's threads only wait for each
# other. With BLAS on one thread instead of einsum, ranking alone took 1.64-1.70 instead of
# 2.03-2.08 ms of CPU per list (bench/relevance_lab.py, "ranking alone").
threadpool_limits(limits=1, user_api="blas")

# The parent's heaviest terms whose postings are read. Each article posts only its 16 heaviest
# (`clustering.POSTING_TERMS`), and coverage of one event in other words often shares none of
# the parent's first 16 with them: reading 32 found a third more of ECB+'s missed same-event
# pairs. The postings of the terms after the DEEP_TERMS heaviest are read half as deep
# (PER_LIST / 2 on each side): as good on the dev data, for half the extra index reads.
CANDIDATE_TERMS: Final = 32
DEEP_TERMS: Final = 16
PER_LIST: Final = 40
PARENT_ENTITIES: Final = 5
PER_ENTITY: Final = 20
# Candidates from the postings, best by summed term weight (stories larger than 80 lose
# members to the bound: UCI R-precision 0.831 at 80, 0.840 at 120).
BY_TERMS: Final = 120
TIME_SCALE_HOURS: Final = 168.0
UNKNOWN_TIME: Final = 0.75
FEEDBACK: Final = 0.7
FEEDBACK_DOCS: Final = 3
# Only the best first-pass candidates are rescored (with each other as context).
RESCORED: Final = 80
# Agreement of the nearest neighbours within the candidates (see `_context_scores`).
NEIGHBOURS: Final = 10
NEIGHBOUR_WEIGHT: Final = 0.6
# Agreement over all members' rows (see `_context_scores`).
ROW_WEIGHT: Final = 0.4
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


def _same_event(parent: stories.ParentSignals, c: stories.Candidate, text: float) -> bool:
    """Close in time and about the same things, though the story clusters have not met (as
    coverage of one event in two languages, whose words differ but whose entities do not)."""
    if not (parent.dated and c.dated) or abs(c.published_at - parent.published_at) > EVENT_GAP:
        return False
    return len(c.shared_entities) >= 2 or text >= STORY_SIMILARITY


@dataclass(frozen=True, slots=True)
class Idf:
    """Inverse document frequencies of now, for the terms of a ranking (ascending terms)."""

    documents: int
    terms: NDArray[np.int64]
    values: NDArray[np.float64]

    @classmethod
    def of(cls, documents: int, terms: Sequence[int], dfs: Sequence[int]) -> Idf:
        df = np.asarray(dfs, np.float64)
        values = np.log((documents + 1) / (df + 1)) + 1.0
        return cls(documents, np.asarray(terms, np.int64), values)

    def lookup(self, terms: NDArray[np.int64]) -> NDArray[np.float64]:
        """IDF of each term (a term not counted yet has df 0)."""
        unseen = math.log(self.documents + 1) + 1.0
        if not len(self.terms):
            return np.full(len(terms), unseen)
        at = np.minimum(np.searchsorted(self.terms, terms), len(self.terms) - 1)
        return np.where(self.terms[at] == terms, self.values[at], unseen)


# Document frequencies read for a ranking are kept this long per database, so that rankings
# soon after need no statement for the terms they share (at 1M articles, reading ~990 terms'
# frequencies took 4.4-4.8 ms at p50, more than the ranking itself; kept, 0.4 ms:
# bench/related_steps.py). The IDF used is then at most this
# old; a term's frequency moves little in a minute except when a story breaks, and then its
# IDF is briefly too high, which favours the breaking story's coverage, not another's.
DF_CACHE_SECONDS: Final = 60.0
DF_CACHE_TERMS: Final = 1_000_000


class _DocumentFrequencies:
    """The document frequencies read from one database in the last DF_CACHE_SECONDS."""

    def __init__(self) -> None:
        self.since = time.monotonic()
        self.documents = 0
        self.dfs: dict[int, int] = {}  # a term counted nowhere has 0

    def expired(self) -> bool:
        return time.monotonic() - self.since > DF_CACHE_SECONDS or len(self.dfs) > DF_CACHE_TERMS

    async def idf(self, db: Database, terms: NDArray[np.int64]) -> Idf:
        """The IDF of `terms` (ascending), reading only the frequencies not kept yet."""
        wanted = terms.tolist()
        dfs = self.dfs
        missing = [t for t in wanted if t not in dfs]
        if missing or not self.documents:
            documents, found, counts = await stories.fetch_term_stats(db, missing)
            dfs.update(dict.fromkeys(missing, 0))
            dfs.update(zip(found, counts, strict=True))
            self.documents = documents
        return Idf.of(self.documents, wanted, [dfs[t] for t in wanted])


_frequencies: weakref.WeakKeyDictionary[Database, _DocumentFrequencies] = (
    weakref.WeakKeyDictionary()
)


def _document_frequencies(db: Database) -> _DocumentFrequencies:
    kept = _frequencies.get(db)
    if kept is None or kept.expired():
        kept = _frequencies[db] = _DocumentFrequencies()
    return kept


@dataclass(frozen=True, slots=True)
class _Vectors:
    """The sparse vectors of some members, flat: row, term and weight of each entry."""

    count: int
    rows: NDArray[np.int64]
    terms: NDArray[np.int64]
    weights: NDArray[np.float64]

    def subset(self, keep: Sequence[int]) -> _Vectors:
        """The vectors of members `keep` (in that order)."""
        position = np.full(self.count, -1, np.int64)
        position[np.asarray(keep, np.int64)] = np.arange(len(keep))
        new_rows = position[self.rows]
        mask = new_rows >= 0
        return _Vectors(len(keep), new_rows[mask], self.terms[mask], self.weights[mask])


def _vectors(
    members: Sequence[stories.ParentSignals | stories.Candidate], idf: Idf | None = None
) -> _Vectors:
    """The members' unit vectors: stored terms weighed by today's IDF (`idf`) when the
    member stores its term frequencies, else its stored weights (IDF of when it was indexed).
    A member that comes without stored weights (`fetch_candidates` leaves them out beside the
    frequencies) is weighed by `idf`, or alike for every term without one."""
    sizes = [len(m.terms) for m in members]
    rows = np.repeat(np.arange(len(members)), sizes)
    if not members:
        return _Vectors(0, rows, np.empty(0, np.int64), np.empty(0))
    terms = np.concatenate([np.asarray(m.terms) for m in members]).astype(np.int64)
    fresh_members = [m.tfs is not None and (idf is not None or m.weights is None) for m in members]
    weights = np.concatenate(
        [
            np.asarray(m.tfs if fresh else m.weights)
            for m, fresh in zip(members, fresh_members, strict=True)
        ]
    ).astype(np.float64)
    if any(fresh_members):
        fresh = np.asarray(fresh_members)[rows]
        values = weights * idf.lookup(terms) if idf is not None else weights
        norms = np.sqrt(np.bincount(rows, values * values, len(members)))
        weights = np.where(fresh, values / np.maximum(norms[rows], 1e-12), weights)
    return _Vectors(len(members), rows, terms, weights)


def _pairwise(vectors: _Vectors) -> NDArray[np.float64]:
    """Pairwise cosines of unit vectors (the diagonal is 1). Only terms that two members
    share can add to a cosine, so the dense matrix keeps just those columns."""
    _, inverse, counts = np.unique(vectors.terms, return_inverse=True, return_counts=True)
    shared = counts[inverse] > 1
    index = np.cumsum(counts > 1) - 1
    matrix = np.zeros((vectors.count, int((counts > 1).sum())))
    matrix[vectors.rows[shared], index[inverse[shared]]] = vectors.weights[shared]
    similarity: NDArray[np.float64] = matrix @ matrix.T  # BLAS, on one thread (above)
    np.fill_diagonal(similarity, 1.0)
    return similarity


def _similarities(
    members: Sequence[stories.ParentSignals | stories.Candidate], idf: Idf | None = None
) -> NDArray[np.float64]:
    """Pairwise TF-IDF cosines of the members (unit vectors: the diagonal is 1)."""
    return _pairwise(_vectors(members, idf))


def _first_cosines(vectors: _Vectors) -> NDArray[np.float64]:
    """The cosine of member 0 (the parent) with each of the others."""
    mine = vectors.rows == 0
    if not mine.any():
        return np.zeros(vectors.count - 1)
    order = np.argsort(vectors.terms[mine])
    parent_terms = vectors.terms[mine][order]
    parent_weights = vectors.weights[mine][order]
    others = ~mine
    terms = vectors.terms[others]
    at = np.minimum(np.searchsorted(parent_terms, terms), len(parent_terms) - 1)
    products = np.where(parent_terms[at] == terms, parent_weights[at], 0.0)
    products = products * vectors.weights[others]
    sums = np.bincount(vectors.rows[others] - 1, products, vectors.count - 1)
    return sums.astype(np.float64, copy=False)


def _parent_cosines(
    parent: stories.ParentSignals, pool: Sequence[stories.Candidate], idf: Idf | None = None
) -> NDArray[np.float64]:
    """The TF-IDF cosine of the parent with each candidate."""
    return _first_cosines(_vectors([parent, *pool], idf))


def _times(
    members: Sequence[stories.ParentSignals | stories.Candidate],
) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """Each member's date in hours, and whether it is real (not estimated)."""
    hours = np.fromiter((m.published_at.timestamp() / 3600 for m in members), np.float64)
    return hours, np.fromiter((m.dated for m in members), bool, len(members))


def _time_factors(
    hours: NDArray[np.float64], dated: NDArray[np.bool_], rows: int | None = None
) -> NDArray[np.float64]:
    """Closeness in time of the first `rows` members (default: all) to every member: 0.6-1.0
    by the gap (half-life about five days) when both dates are real, else UNKNOWN_TIME."""
    rows = len(hours) if rows is None else rows
    gaps = np.abs(hours[:rows, None] - hours[None, :])
    close = 0.6 + 0.4 * np.exp(-gaps / TIME_SCALE_HOURS)
    return np.where(dated[:rows, None] & dated[None, :], close, UNKNOWN_TIME)


def _expanded(similarity: NDArray[np.float64], times: NDArray[np.float64]) -> NDArray[np.float64]:
    """Row i, column j: cos(v_i + FEEDBACK · mean of the FEEDBACK_DOCS members closest to i,
    v_j) × the time factor of i and j, from the pairwise cosines alone (the diagonal is 0)."""
    n = len(similarity)
    first = similarity * times
    np.fill_diagonal(first, -np.inf)
    k = min(FEEDBACK_DOCS, n - 1)
    if k < 1:
        return np.zeros((n, n))
    closest = np.argpartition(-first, k - 1, axis=1)[:, :k]
    feedback = similarity[closest].mean(axis=1)
    among = similarity[closest[:, :, None], closest[:, None, :]].mean(axis=(1, 2))
    lift = similarity[np.arange(n)[:, None], closest].mean(axis=1)
    norm = np.sqrt(1.0 + 2 * FEEDBACK * lift + FEEDBACK**2 * among)
    expanded: NDArray[np.float64] = (similarity + FEEDBACK * feedback) / norm[:, None] * times
    np.fill_diagonal(expanded, 0.0)
    return expanded


def _context_scores(
    similarity: NDArray[np.float64], times: NDArray[np.float64]
) -> NDArray[np.float64]:
    """Each candidate's text score for the parent (0..1): the cosine after pseudo-relevance
    feedback (every member's vector plus its FEEDBACK_DOCS closest members', Rocchio style),
    times closeness in time, mixed with how much the two agree on their NEIGHBOURS nearest
    members (cosine of the rows of nearest neighbours) and on all members (cosine of whole
    rows): coverage of one event is closest to the same other articles, while a story of the
    same kind has neighbours of its own (`times`: the members' pairwise time factors)."""
    n = len(similarity)
    expanded = _expanded(similarity, times)
    m = min(NEIGHBOURS, n - 1)
    profile = np.zeros((n, n))
    if m:
        nearest = np.argpartition(-expanded, m - 1, axis=1)[:, :m]
        picked = np.arange(n)[:, None]
        profile[picked, nearest] = np.maximum(expanded[picked, nearest], 0.0)
    np.fill_diagonal(profile, 1.0)
    profile /= np.linalg.norm(profile, axis=1, keepdims=True)
    agreement = profile[0] @ profile[1:].T
    # The same over all members (whole rows): robust where a story has far more members
    # than NEIGHBOURS, whose nearest few are then a chance draw among equals.
    rows = np.maximum(expanded, 0.0)
    np.fill_diagonal(rows, 1.0)
    rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    overall = rows[0] @ rows[1:].T
    scores: NDArray[np.float64] = (
        expanded[0, 1:] + NEIGHBOUR_WEIGHT * agreement + ROW_WEIGHT * overall
    ) / (1.0 + NEIGHBOUR_WEIGHT + ROW_WEIGHT)
    return scores


def rank(
    parent: stories.ParentSignals,
    candidates: Sequence[stories.Candidate],
    query: RelatedQuery,
    idf: Idf | None = None,
) -> list[RelatedItem]:
    """The related items of one article, best first, at most `query.first`; `idf` weighs
    the stored term frequencies (None: the weights stored at indexing)."""
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
    everyone: list[stories.ParentSignals | stories.Candidate] = [parent, *pool]
    vectors = _vectors(everyone, idf)
    hours, dated = _times(everyone)
    cosines = _first_cosines(vectors)
    first = cosines * _time_factors(hours, dated, 1)[0, 1:]
    order = np.argsort(-first, kind="stable")[:RESCORED]
    pool = [pool[i] for i in order.tolist()]
    texts = cosines[order]
    members = np.concatenate(([0], order + 1))
    similarity = _pairwise(vectors.subset(members.tolist()))
    context = _context_scores(similarity, _time_factors(hours[members], dated[members]))
    same_story = np.fromiter(
        (parent.story_id is not None and c.story_id == parent.story_id for c in pool), bool
    )
    shared = np.fromiter((len(c.shared_entities) for c in pool), np.float64)
    scores = context + ENTITY_BONUS * np.minimum(shared, 5) + STORY_BONUS * same_story
    scores = np.round(np.clip(scores, 0.0, 1.0), 4).astype(np.float64)
    ids = np.fromiter((c.article_id for c in pool), np.int64)
    ranked = np.lexsort((ids, -scores)).tolist()  # best first, then by id
    if not query.include_duplicates:
        seen: set[int] = set()
        collapsed = []
        for i in ranked:
            root = pool[i].duplicate_of or pool[i].article_id
            if root not in seen:
                seen.add(root)
                collapsed.append(i)
        ranked = collapsed
    others = [i for i in ranked if pool[i].source_id != parent.source_id]
    own = [i for i in ranked if pool[i].source_id == parent.source_id]
    picked = (_diversify(others, pool, scores, query.first) + own)[: query.first]
    return [
        _item(parent, pool[i], float(scores[i]), float(texts[i]), bool(same_story[i]))
        for i in picked
    ]


def _item(
    parent: stories.ParentSignals, c: stories.Candidate, score: float, text: float, story: bool
) -> RelatedItem:
    if (c.duplicate_of or c.article_id) == (parent.duplicate_of or parent.article_id):
        relation = "DUPLICATE"
    elif story or text >= SAME_STORY_TEXT or _same_event(parent, c, text):
        relation = "SAME_STORY"
    else:
        relation = "RELATED"
    gap = None
    if parent.dated and c.dated:
        gap = round((c.published_at - parent.published_at).total_seconds() / 3600, 2)
    return RelatedItem(
        article_id=c.article_id, score=score, text_similarity=round(text, 4),
        time_gap_hours=gap, relation=relation, shared_entities=tuple(c.shared_entities),
        source_id=c.source_id,
    )  # fmt: skip


def _diversify(
    ranked: list[int], pool: Sequence[stories.Candidate], scores: NDArray[np.float64], limit: int
) -> list[int]:
    """The first `limit` of `ranked` (positions in `pool`, best first), no outlet twice in a
    row while another outlet's item still qualifies."""
    result: list[int] = []
    rest = list(ranked)
    while rest and len(result) < limit:
        pick = 0
        last = pool[result[-1]].source_id if result else None
        if pool[rest[0]].source_id == last:
            floor = scores[rest[0]] * DIVERSITY_SHARE
            for at, i in enumerate(rest):
                if scores[i] < floor:
                    break
                if pool[i].source_id != last:
                    pick = at
                    break
        result.append(rest.pop(pick))
    return result


async def fetch_candidates(
    db: Database, parents: Sequence[int], window_days: int
) -> tuple[dict[int, stories.ParentSignals], list[stories.Candidate]]:
    """The parents' signals and their candidates, bounded as the constants above say."""
    return await stories.fetch_candidates(
        db, list(parents), window=timedelta(days=window_days),
        terms=CANDIDATE_TERMS, per_list=PER_LIST, entities=PARENT_ENTITIES, by_terms=BY_TERMS,
        per_entity=PER_ENTITY, deep_terms=DEEP_TERMS,
    )  # fmt: skip


async def find_related(
    db: Database, parents: Sequence[int], query: RelatedQuery
) -> dict[int, list[RelatedItem]]:
    """Related items of each parent article (two statements at most, however many parents:
    signals with candidates, then the document frequencies of their terms not read in the
    last DF_CACHE_SECONDS)."""
    signals, candidates = await fetch_candidates(db, parents, query.window_days)
    if not signals:
        return {}
    by_parent: dict[int, list[stories.Candidate]] = {}
    for c in candidates:
        by_parent.setdefault(c.parent, []).append(c)
    idf = None
    members: list[stories.ParentSignals | stories.Candidate] = [*signals.values(), *candidates]
    fresh = [np.asarray(m.terms) for m in members if m.tfs is not None]
    if fresh:
        terms = np.unique(np.concatenate(fresh).astype(np.int64))
        idf = await _document_frequencies(db).idf(db, terms)
    return {p: rank(s, by_parent.get(p, []), query, idf) for p, s in signals.items()}
