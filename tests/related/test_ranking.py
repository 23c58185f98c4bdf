"""Scoring of related-story candidates (pure: hand-built signals, no database)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from service.db.stories import Candidate, ParentSignals
from service.related import features as F
from service.related import find_related as R

WHEN = datetime(2024, 3, 1, 12, tzinfo=UTC)

# Two events of one kind: the same topic words, other names. The parent is about the first.
TEXTS = {
    1: "Actress Tara Reid checked into rehab at the Promises clinic in Malibu, her rep said.",
    2: "Tara Reid enters Promises rehab clinic in Malibu, the actress's representative said.",
    3: "Reid, the American Pie actress, is at Promises in Malibu for rehab, her rep confirmed.",
    4: "Tara Reid checked into Promises, a Malibu rehab clinic; her rep asks for privacy.",
    5: "Actress Lindsay Lohan checked into rehab at the Betty Ford clinic, her rep said.",
    6: "Lindsay Lohan enters Betty Ford rehab clinic, the actress's representative said.",
    7: "Lohan, the Mean Girls actress, is at Betty Ford for rehab, her lawyer confirmed.",
    8: "Lindsay Lohan checked into Betty Ford, a rehab clinic; the court ordered 90 days.",
}


def _vectors() -> dict[int, dict[int, float]]:
    counts = {i: F.term_counts(text, None, None) for i, text in TEXTS.items()}
    df: Counter[int] = F.merge_counts(counts.values())
    return {i: F.vector(c, df, len(counts)) for i, c in counts.items()}


def _parent(article_id: int, vector: dict[int, float]) -> ParentSignals:
    return ParentSignals(
        article_id=article_id, source_id=article_id, published_at=WHEN, dated=False,
        story_id=None, duplicate_of=None, terms=list(vector), weights=list(vector.values()),
    )  # fmt: skip


def _candidate(parent: int, article_id: int, vector: dict[int, float]) -> Candidate:
    return Candidate(
        parent=parent, article_id=article_id, source_id=article_id, language="en",
        published_at=WHEN, dated=False, story_id=None, duplicate_of=None, terms=list(vector),
        weights=list(vector.values()), shared_entities=[],
    )  # fmt: skip


def test_pairwise_cosines_match_the_sparse_cosine() -> None:
    vectors = _vectors()
    members = [_candidate(0, i, v) for i, v in vectors.items()]
    similarity = R._similarities(members)
    parent = _parent(1, vectors[1])
    cosines = R._parent_cosines(parent, members)
    for a, va in enumerate(vectors.values()):
        assert math.isclose(cosines[a], F.cosine(vectors[1], va), abs_tol=1e-9)
        for b, vb in enumerate(vectors.values()):
            expected = 1.0 if a == b else F.cosine(va, vb)
            assert math.isclose(similarity[a, b], expected, abs_tol=1e-9)


def test_feedback_from_pairwise_cosines_is_the_rocchio_cosine() -> None:
    vectors = list(_vectors().values())
    members = [_candidate(0, i, v) for i, v in enumerate(vectors)]
    similarity = R._similarities(members)
    times = np.full_like(similarity, R.UNKNOWN_TIME)
    expanded = R._expanded(similarity, times)
    # The explicit vector: the first member plus FEEDBACK × the mean of its closest members.
    closest = sorted(range(1, len(vectors)), key=lambda j: -similarity[0, j])[: R.FEEDBACK_DOCS]
    query = dict(vectors[0])
    for j in closest:
        for term, weight in vectors[j].items():
            query[term] = query.get(term, 0.0) + R.FEEDBACK * weight / len(closest)
    norm = math.sqrt(sum(w * w for w in query.values()))
    for j in range(1, len(vectors)):
        explicit = F.cosine(query, vectors[j]) / norm * R.UNKNOWN_TIME
        assert math.isclose(expanded[0, j], explicit, abs_tol=1e-9)


def test_coverage_of_the_event_ranks_above_the_same_kind_of_event() -> None:
    vectors = _vectors()
    parent = _parent(1, vectors[1])
    candidates = [_candidate(1, i, v) for i, v in vectors.items() if i != 1]
    items = R.rank(parent, candidates, R.RelatedQuery(first=10, window_days=30))
    assert {i.article_id for i in items[:3]} == {2, 3, 4}
    assert all(0.0 <= i.score <= 1.0 for i in items)
    # The reported text similarity stays the plain cosine of the two articles.
    two = next(i for i in items if i.article_id == 2)
    assert math.isclose(two.text_similarity, round(F.cosine(vectors[1], vectors[2]), 4))


def test_empty_vectors_and_a_single_candidate_are_fine() -> None:
    vectors = _vectors()
    empty = _parent(9, {})
    items = R.rank(empty, [_candidate(9, 2, vectors[2])], R.RelatedQuery(first=5, window_days=1))
    assert [i.article_id for i in items] == [2]
    assert items[0].text_similarity == 0.0
    lone = R.rank(_parent(1, vectors[1]), [_candidate(1, 2, vectors[2])], R.RelatedQuery(5, 1))
    assert [i.article_id for i in lone] == [2]
    assert lone[0].score > 0


def test_context_score_mixes_text_nearest_and_row_agreement(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(R, "NEIGHBOURS", 3)  # fewer than the members: the two agreements differ
    vectors = list(_vectors().values())
    members = [_candidate(0, i, v) for i, v in enumerate(vectors)]
    similarity = R._similarities(members)
    times = R._time_factors(*R._times(members))
    assert (times == R.UNKNOWN_TIME).all()  # undated members
    scores = R._context_scores(similarity, times)
    expanded = R._expanded(similarity, times)
    n = len(members)

    def unit(row: list[float]) -> list[float]:
        norm = math.sqrt(sum(x * x for x in row))
        return [x / norm for x in row]

    def nearest_profile(i: int) -> list[float]:
        ranked = sorted((j for j in range(n) if j != i), key=lambda j: -expanded[i, j])
        keep = set(ranked[: min(R.NEIGHBOURS, n - 1)])
        return unit([1.0 if j == i else max(expanded[i, j], 0.0) if j in keep else 0.0
                     for j in range(n)])  # fmt: skip

    def whole_row(i: int) -> list[float]:
        return unit([1.0 if j == i else max(expanded[i, j], 0.0) for j in range(n)])

    differ = 0
    for j in range(1, n):
        near = sum(a * b for a, b in zip(nearest_profile(0), nearest_profile(j), strict=True))
        rows = sum(a * b for a, b in zip(whole_row(0), whole_row(j), strict=True))
        expected = (expanded[0, j] + R.NEIGHBOUR_WEIGHT * near + R.ROW_WEIGHT * rows) / (
            1.0 + R.NEIGHBOUR_WEIGHT + R.ROW_WEIGHT
        )
        assert math.isclose(scores[j - 1], expected, abs_tol=1e-9)
        differ += not math.isclose(near, rows, abs_tol=1e-6)
    assert differ
    assert R.ROW_WEIGHT > 0


def test_a_follow_up_days_later_counts_more_than_an_unknown_date() -> None:
    # A story develops over a week or more: five days apart is still closer than "unknown".
    vectors = _vectors()
    parent = replace(_parent(1, vectors[1]), dated=True)
    later = replace(_candidate(1, 2, vectors[2]), dated=True, published_at=WHEN + timedelta(days=5))
    undated = _candidate(1, 3, vectors[3])
    months = replace(later, published_at=WHEN + timedelta(days=60))
    factors = R._time_factors(*R._times([parent, later, undated, months]))
    assert factors[0, 1] > factors[0, 2] == R.UNKNOWN_TIME
    assert math.isclose(factors[0, 1], 0.6 + 0.4 * math.exp(-120 / R.TIME_SCALE_HOURS))
    assert factors[0, 3] < R.UNKNOWN_TIME
    assert (factors == factors.T).all()
    assert (R._time_factors(*R._times([parent, later, undated, months]), 1) == factors[:1]).all()


def test_a_process_that_ranks_multiplies_on_one_blas_thread() -> None:
    # Importing the ranking limits BLAS: requests already run side by side, and for matrices
    # this small BLAS threads only wait for each other (see find_related).
    blas = [lib for lib in threadpool_info() if lib["user_api"] == "blas"]
    assert blas, "numpy's BLAS is loaded"
    assert {lib["num_threads"] for lib in blas} == {1}


def test_no_outlet_twice_in_a_row_while_another_one_qualifies() -> None:
    vectors = _vectors()
    pool = [
        replace(_candidate(1, n, vectors[1]), source_id=source)
        for n, source in enumerate((7, 7, 7, 8, 8))
    ]
    scores = np.array([0.9, 0.88, 0.86, 0.8, 0.3])
    # Outlet 8's 0.8 qualifies after outlet 7's 0.9 (at least 0.7 of the best remaining,
    # 0.88); its 0.3 does not, so outlet 7 then follows itself.
    assert R._diversify([0, 1, 2, 3, 4], pool, scores, 5) == [0, 3, 1, 2, 4]
    assert R._diversify([0, 1, 2, 3, 4], pool, scores, 3) == [0, 3, 1]
    assert R._diversify([0, 1, 2], pool, scores, 5) == [0, 1, 2]  # no other outlet
