"""Candidates of related stories come from postings of each article's heaviest terms: an
article is found when it and the parent share one of the parent's CANDIDATE_TERMS (32)
heaviest terms among its own POSTING_TERMS (16): one event told in different words often
shares only its rarer details. The postings of the parent's terms after its DEEP_TERMS
heaviest are read half as deep, and at most BY_TERMS candidates come from postings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from service.db import stories
from service.db.pool import Database
from service.ingest.pipeline import ingest_batch
from service.related import clustering
from service.related import features as F
from service.related import find_related as R
from service.related.indexer import drain

WHEN = "2024-06-03T10:00:00Z"


def _body(prefix: str, shared: str) -> str:
    # Twelve words of the article's own five times each (its heaviest terms), the shared word
    # twice (its thirteenth), then eight words once.
    heavy = " ".join(f"{prefix}heavy{i}a" for i in range(12))
    light = " ".join(f"{prefix}light{i}a" for i in range(8))
    return " ".join([heavy] * 5 + [shared, shared, light])


def _item(n: int, body: str, when: str = WHEN) -> dict[str, Any]:
    domain = f"postings{n}.example"
    return {
        "url": f"https://{domain}/news/{n}",
        "title": f"report{n}x",
        "body": body,
        "language": "en",
        "publishedAt": when,
        "source": {"domain": domain, "name": domain},
    }


def _heavy_body(prefix: str, heavy: int, shared: list[str]) -> str:
    # `heavy` words of the article's own five times each, then each shared word twice: with
    # the title's word, a shared word is the article's (heavy + 2)th heaviest term or later.
    own = " ".join(f"{prefix}heavy{i}a" for i in range(heavy))
    return " ".join([own] * 5 + [w for w in shared for _ in range(2)])


def _hours_before(hours: int) -> str:
    when = datetime.fromisoformat(WHEN.replace("Z", "+00:00")) - timedelta(hours=hours)
    return when.astimezone(UTC).isoformat()


def _term(word: str) -> int:
    (term,) = F.term_counts(word, None, None)
    return term


async def _fetch(
    db: Database, parent: int
) -> tuple[dict[int, stories.ParentSignals], list[stories.Candidate]]:
    return await stories.fetch_candidates(
        db, [parent], window=timedelta(days=30), terms=R.CANDIDATE_TERMS,
        per_list=R.PER_LIST, entities=R.PARENT_ENTITIES, by_terms=R.BY_TERMS,
        per_entity=R.PER_ENTITY, deep_terms=R.DEEP_TERMS,
    )  # fmt: skip


async def _candidates(db: Database, parent: int) -> set[int]:
    _, found = await _fetch(db, parent)
    return {c.article_id for c in found}


async def _sharing_a_thirteenth_term(db: Database) -> tuple[int, int]:
    """Two indexed articles whose only shared term is each one's thirteenth heaviest."""
    results = await ingest_batch(
        db, [_item(1, _body("pp", "zorquenta")), _item(2, _body("cc", "zorquenta"))]
    )
    await drain(db)
    parent, other = (r.article_id for r in results)
    assert parent is not None
    assert other is not None
    return parent, other


async def test_a_shared_thirteenth_term_finds_the_candidate(write_db: Database) -> None:
    parent, other = await _sharing_a_thirteenth_term(write_db)
    postings = await write_db.fetch(
        "SELECT article_id, count(*) AS n FROM article_terms "
        "WHERE article_id = ANY($1::bigint[]) GROUP BY article_id",
        [parent, other],
    )
    assert {r["n"] for r in postings} == {clustering.POSTING_TERMS} == {16}
    found = await R.find_related(write_db, [parent], R.RelatedQuery(first=10, window_days=30))
    assert other in [i.article_id for i in found[parent]]


async def test_a_term_after_the_parents_sixteenth_finds_the_candidate(write_db: Database) -> None:
    # The shared word is the parent's 20th heaviest term and the other's 14th (posted).
    results = await ingest_batch(
        write_db,
        [
            _item(1, _heavy_body("pp", 18, ["zorquenta"])),
            _item(2, _heavy_body("cc", 12, ["zorquenta"]), _hours_before(1)),
        ],
    )
    await drain(write_db)
    parent, other = (r.article_id for r in results)
    assert parent is not None
    assert other is not None
    terms = await write_db.fetchval(
        "SELECT terms FROM article_signals WHERE article_id = $1", parent
    )
    assert R.DEEP_TERMS < terms.index(_term("zorquenta")) < R.CANDIDATE_TERMS
    found = await R.find_related(write_db, [parent], R.RelatedQuery(first=10, window_days=30))
    assert other in [i.article_id for i in found[parent]]


async def test_postings_after_the_deep_terms_are_read_half_as_deep(write_db: Database) -> None:
    # 25 earlier articles share the parent's 20th term: the nearest PER_LIST / 2 are read.
    others = [
        _item(n, _heavy_body(f"c{n}x", 12, ["zorquenta"]), _hours_before(n)) for n in range(2, 27)
    ]
    results = await ingest_batch(
        write_db, [_item(1, _heavy_body("pp", 18, ["zorquenta"])), *others]
    )
    await drain(write_db)
    parent = results[0].article_id
    assert parent is not None
    nearest = {r.article_id for r in results[1 : 1 + R.PER_LIST // 2]}
    assert await _candidates(write_db, parent) == nearest


async def test_up_to_by_terms_candidates_come_from_postings(write_db: Database) -> None:
    # Three of the parent's heaviest terms, each shared by 40 other (earlier) articles: 120
    # candidates by postings, more than the 80 of before (large stories lost members).
    shared = ["zorquenta", "blimvarto", "krestopol"]
    others = [
        _item(n, _heavy_body(f"c{n}x", 12, [shared[n % 3]]), _hours_before(n))
        for n in range(2, 122)
    ]
    results = await ingest_batch(write_db, [_item(1, _heavy_body("pp", 4, shared)), *others])
    await drain(write_db)
    parent = results[0].article_id
    assert parent is not None
    assert R.BY_TERMS == 120
    assert await _candidates(write_db, parent) == {r.article_id for r in results[1:]}


async def test_signals_come_with_the_candidates_as_they_are_stored(write_db: Database) -> None:
    # Read in PostgreSQL's binary array form (`array_send`): the same numbers as stored,
    # stored weights only for an article indexed before term frequencies (migration 0010),
    # and an empty vector as an empty one.
    parent, other = await _sharing_a_thirteenth_term(write_db)
    async with write_db.transaction() as w:
        await w.execute("UPDATE article_signals SET tfs = NULL WHERE article_id = $1", other)
    stored = {
        r["article_id"]: r
        for r in await write_db.fetch(
            "SELECT article_id, terms, weights, tfs FROM article_signals "
            "WHERE article_id = ANY($1::bigint[])",
            [parent, other],
        )
    }
    signals, found = await _fetch(write_db, parent)
    mine, (candidate,) = signals[parent], found
    assert candidate.article_id == other
    assert list(mine.terms) == stored[parent]["terms"]
    assert list(mine.tfs) == stored[parent]["tfs"]  # type: ignore[arg-type]
    assert mine.weights is None  # weighed by the IDF of now, from its frequencies
    assert list(candidate.terms) == stored[other]["terms"]
    assert list(candidate.weights) == stored[other]["weights"]  # type: ignore[arg-type]
    assert candidate.tfs is None
    assert min(stored[parent]["terms"]) < 0 < max(stored[parent]["terms"])  # signed ids too

    async with write_db.transaction() as w:
        await w.execute(
            "UPDATE article_signals SET terms = '{}', weights = '{}', tfs = '{}' "
            "WHERE article_id = $1",
            parent,
        )
    signals, _ = await _fetch(write_db, parent)
    emptied = signals[parent]
    assert emptied.tfs is not None
    assert len(emptied.terms) == len(emptied.tfs) == 0
    found_now = await R.find_related(write_db, [parent], R.RelatedQuery(first=10, window_days=30))
    assert found_now == {parent: []}
