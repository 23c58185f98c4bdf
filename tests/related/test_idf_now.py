"""Ranking weighs stored term frequencies with the IDF of now (migration 0010; frequencies
read at most R.DF_CACHE_SECONDS before), so the first articles of a database are not ranked
with the skewed IDF of a small corpus forever; rows indexed before the migration (no `tfs`)
keep their stored weights."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pytest

from service.db import stories
from service.db.pool import Database
from service.ingest.pipeline import ingest_batch
from service.related import features as F
from service.related import find_related as R
from service.related.indexer import drain

WHEN = "2024-06-03T10:00:00Z"
LONG_AGO = "2019-06-03T10:00:00Z"  # outside the window: counted in IDF, never a candidate

PARENT = (
    "Zorblat floods reach Quixalon",
    "The Zorblat river flooded the valley town of Quixalon overnight, officials said.",
)
# Shares the parent's "zorblat" (title and body), which is rare when these are indexed.
BY_RIVER = (
    "Zorblat river: Zorblat levels rise",
    "Engineers watched the Zorblat river rise all week; the Zorblat dam held, they said.",
)
# Shares the parent's "quixalon", once in the title.
BY_TOWN = (
    "Quixalon counts damage",
    "Shopkeepers in Quixalon began counting the damage on Tuesday after the water fell.",
)


def _item(n: int, title: str, body: str, date: str) -> dict[str, Any]:
    domain = f"idf{n}.example"
    return {
        "url": f"https://{domain}/news/{n}",
        "title": title,
        "body": body,
        "language": "en",
        "publishedAt": date,
        "source": {"domain": domain, "name": domain},
    }


async def _ingest(db: Database, items: list[dict[str, Any]]) -> list[int]:
    results = await ingest_batch(db, items)
    assert all(r.status == "CREATED" for r in results), results
    await drain(db)
    return [r.article_id for r in results if r.article_id is not None]


async def _order(db: Database, parent: int) -> list[int]:
    found = await R.find_related(db, [parent], R.RelatedQuery(first=10, window_days=30))
    return [i.article_id for i in found[parent]]


async def test_ranking_uses_the_idf_of_now(
    write_db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    parent, river, town = await _ingest(
        write_db, [_item(i, t, b, WHEN) for i, (t, b) in enumerate((PARENT, BY_RIVER, BY_TOWN))]
    )
    rows = await write_db.fetch(
        "SELECT article_id, terms, tfs FROM article_signals WHERE article_id = ANY($1::bigint[])",
        [parent, river, town],
    )
    assert len(rows) == 3
    assert all(len(r["tfs"]) == len(r["terms"]) > 0 for r in rows)
    # While "zorblat" is as rare as "quixalon", the article sharing it twice comes first.
    assert (await _order(write_db, parent))[:2] == [river, town]

    # Then "zorblat" becomes a common word (coverage of other years, outside the window).
    await _ingest(
        write_db,
        [
            _item(10 + i, f"Zorblat report {i}", f"Zorblat water levels, year {i}.", LONG_AGO)
            for i in range(40)
        ],
    )
    # The frequencies read a moment ago are kept for a while (R.DF_CACHE_SECONDS)...
    assert (await _order(write_db, parent))[:2] == [river, town]
    # ...and read anew once they are older.
    monkeypatch.setattr(R, "DF_CACHE_SECONDS", 0.0)
    assert (await _order(write_db, parent))[:2] == [town, river]

    # Rows indexed before migration 0010 (no tfs) keep the weights of when they were indexed.
    await write_db.fetch(
        "UPDATE article_signals SET tfs = NULL WHERE article_id = ANY($1::bigint[])",
        [parent, river, town],
    )
    assert (await _order(write_db, parent))[:2] == [river, town]


def test_vectors_weighed_now_equal_the_vector_of_those_frequencies() -> None:
    counts = {
        i: F.term_counts(title, None, body)
        for i, (title, body) in enumerate((PARENT, BY_RIVER, BY_TOWN))
    }
    then: Counter[int] = F.merge_counts(counts.values())
    now = Counter({term: df * 7 for term, df in then.items()})
    members = []
    for i, c in counts.items():
        v = F.vector(c, then, 3)
        members.append(
            stories.ParentSignals(
                article_id=i, source_id=i, published_at=datetime(2024, 6, 3, tzinfo=UTC),
                dated=True, story_id=None, duplicate_of=None, terms=list(v),
                weights=list(v.values()), tfs=[F.tf(c[t]) for t in v],
            )
        )  # fmt: skip
    terms = sorted(now)
    idf = R.Idf.of(30, terms, [now[t] for t in terms])
    vectors = R._vectors(members, idf)
    for i, c in counts.items():
        expected = F.vector(c, now, 30)
        got = {
            int(t): float(w)
            for t, w, row in zip(vectors.terms, vectors.weights, vectors.rows, strict=True)
            if row == i
        }
        assert got.keys() == expected.keys()
        assert all(math.isclose(got[t], expected[t], abs_tol=1e-9) for t in got)
    # Without the IDF of now, the stored weights are used as they are.
    stored = R._vectors(members)
    assert stored.weights.tolist() == [w for m in members for w in m.weights or []]
    # As `fetch_candidates` sends them (frequencies, no stored weights): the same vectors of
    # now; and with no IDF at all, the frequencies alone, made unit length.
    sent = [replace(m, weights=None) for m in members]
    assert np.allclose(R._vectors(sent, idf).weights, vectors.weights, atol=1e-12)
    alone = R._vectors(sent)
    for i, m in enumerate(sent):
        tfs = np.asarray(m.tfs)
        assert np.allclose(alone.weights[alone.rows == i], tfs / np.linalg.norm(tfs))
