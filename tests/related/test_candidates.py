"""Candidates of related stories come from postings of each article's heaviest terms: an
article is found when it and the parent share one of the parent's CANDIDATE_TERMS heaviest
terms among its own POSTING_TERMS (16 each: one event told in different words often shares
only its rarer details)."""

from __future__ import annotations

from typing import Any

from service.db.pool import Database
from service.ingest.pipeline import ingest_batch
from service.related import clustering
from service.related import find_related as R
from service.related.indexer import drain

WHEN = "2024-06-03T10:00:00Z"


def _body(prefix: str, shared: str) -> str:
    # Twelve words of the article's own five times each (its heaviest terms), the shared word
    # twice (its thirteenth), then eight words once.
    heavy = " ".join(f"{prefix}heavy{i}a" for i in range(12))
    light = " ".join(f"{prefix}light{i}a" for i in range(8))
    return " ".join([heavy] * 5 + [shared, shared, light])


def _item(n: int, body: str) -> dict[str, Any]:
    domain = f"postings{n}.example"
    return {
        "url": f"https://{domain}/news/{n}",
        "title": f"report{n}x",
        "body": body,
        "language": "en",
        "publishedAt": WHEN,
        "source": {"domain": domain, "name": domain},
    }


async def test_a_shared_thirteenth_term_finds_the_candidate(write_db: Database) -> None:
    results = await ingest_batch(
        write_db, [_item(1, _body("pp", "zorquenta")), _item(2, _body("cc", "zorquenta"))]
    )
    await drain(write_db)
    parent, other = (r.article_id for r in results)
    assert parent is not None
    assert other is not None
    postings = await write_db.fetch(
        "SELECT article_id, count(*) AS n FROM article_terms "
        "WHERE article_id = ANY($1::bigint[]) GROUP BY article_id",
        [parent, other],
    )
    assert {r["n"] for r in postings} == {clustering.POSTING_TERMS} == {16}
    found = await R.find_related(write_db, [parent], R.RelatedQuery(first=10, window_days=30))
    assert other in [i.article_id for i in found[parent]]
