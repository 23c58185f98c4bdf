"""SQL of related stories: text signals, story clusters, wire copies (writes and reads).

Writes run inside the ingest transaction (`Writer`), a fixed number of statements per batch;
reads take many parents at once (one statement with a LATERAL per parent), so a list of
articles asking for their related stories costs the same statements as one article.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final, overload

import numpy as np
from numpy.typing import NDArray

from service.db.pool import Database, Writer

__all__ = [
    "ArticleRelations",
    "BatchMember",
    "Candidate",
    "DuplicateCandidate",
    "ParentSignals",
    "SignalRow",
    "StoryRecord",
    "Terms",
    "Values",
    "bump_term_stats",
    "create_stories",
    "fetch_candidates",
    "fetch_cluster_candidates",
    "fetch_duplicate_candidates",
    "fetch_duplicates",
    "fetch_stories_by_ids",
    "fetch_story_articles",
    "fetch_story_entities",
    "fetch_story_ids",
    "fetch_story_source_counts",
    "fetch_term_stats",
    "list_stories",
    "merge_stories",
    "refresh_stories",
    "set_duplicate_of",
    "set_exclude_from_related",
    "set_wire_service",
    "wire_sources",
    "write_postings",
    "write_signals",
]


@dataclass(frozen=True, slots=True)
class SignalRow:
    article_id: int
    source_id: int
    language: str
    published_at: datetime
    dated: bool
    terms: list[int]  # heaviest first
    weights: list[float]
    tfs: list[float]  # sublinear term frequency of each term (IDF applied when ranking)
    signature: bytes | None
    postings: list[int]  # the terms indexed in article_terms
    bands: list[int]
    # Decided before the row is written: a new article is inserted with its story and its
    # original (an article already stored keeps its own unless it has no story).
    story_id: int | None = None
    duplicate_of: int | None = None


@dataclass(frozen=True, slots=True)
class StoryRecord:
    id: int
    title: str
    article_count: int
    first_published_at: datetime
    last_published_at: datetime


BUMP_TERM_STATS: Final = """
INSERT INTO term_stats AS t (term, df)
SELECT term, df FROM unnest($1::int[], $2::int[]) AS x(term, df) ORDER BY term
ON CONFLICT (term) DO UPDATE SET df = t.df + EXCLUDED.df
RETURNING term, df
"""

BUMP_DOCUMENTS: Final = (
    "UPDATE related_stats SET documents = documents + $1 WHERE id RETURNING documents"
)


async def bump_term_stats(
    w: Writer, increments: dict[int, int], new_documents: int
) -> tuple[dict[int, int], int]:
    """Add document frequencies (terms in key order: concurrent batches cannot deadlock)."""
    terms = sorted(increments)
    rows = await w.fetch(BUMP_TERM_STATS, terms, [increments[t] for t in terms])
    documents = await w.fetchval(BUMP_DOCUMENTS, new_documents)
    return {r["term"]: r["df"] for r in rows}, int(documents)


# The vectors of all rows travel as three flat arrays (binary on the wire) cut by each row's
# bounds: an array per row would have to be sent as text (a text[] of array literals, ~120 µs
# of Python per article to format) or as a rectangular 2-D array.
UPSERT_SIGNALS: Final = """
INSERT INTO article_signals AS s
    (article_id, source_id, language, published_at, dated, terms, weights, tfs, signature,
     story_id, duplicate_of)
SELECT x.article_id, x.source_id, x.language, x.published_at, x.dated, ($6::int[])[x.lo:x.hi],
       ($7::real[])[x.lo:x.hi], ($8::real[])[x.lo:x.hi], x.signature, x.story_id,
       x.duplicate_of
FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::timestamptz[], $5::bool[],
            $9::bytea[], $10::int[], $11::int[], $12::bigint[], $13::bigint[])
    AS x(article_id, source_id, language, published_at, dated, signature, lo, hi, story_id,
         duplicate_of)
ORDER BY x.article_id
ON CONFLICT (article_id) DO UPDATE SET
    source_id = EXCLUDED.source_id, language = EXCLUDED.language,
    published_at = EXCLUDED.published_at, dated = EXCLUDED.dated, terms = EXCLUDED.terms,
    weights = EXCLUDED.weights, tfs = EXCLUDED.tfs, signature = EXCLUDED.signature,
    story_id = coalesce(s.story_id, EXCLUDED.story_id)
"""

DELETE_POSTINGS: Final = "DELETE FROM article_terms WHERE article_id = ANY($1::bigint[])"
INSERT_POSTINGS: Final = """
INSERT INTO article_terms (term, published_at, article_id)
SELECT * FROM unnest($1::int[], $2::timestamptz[], $3::bigint[])
ON CONFLICT DO NOTHING
"""
DELETE_BANDS: Final = "DELETE FROM article_bands WHERE article_id = ANY($1::bigint[])"
INSERT_BANDS: Final = """
INSERT INTO article_bands (band, article_id)
SELECT * FROM unnest($1::bigint[], $2::bigint[])
ON CONFLICT DO NOTHING
"""


def _flat(lists: Sequence[Sequence[int]]) -> tuple[list[int], list[int], list[int]]:
    """The lists end to end, with each one's bounds in the result (from 1, inclusive, as
    PostgreSQL slices arrays): one binary array instead of an array of arrays."""
    flat: list[int] = []
    lows, highs = [], []
    for values in lists:
        lows.append(len(flat) + 1)
        flat.extend(values)
        highs.append(len(flat))
    return flat, lows, highs


async def write_postings(w: Writer, rows: Sequence[SignalRow]) -> None:
    """Replace the articles' postings and band keys (written first: finding the batch's
    copies and stories reads them, and the articles' signals rows come last)."""
    rows = sorted(rows, key=lambda r: r.article_id)
    ids = [r.article_id for r in rows]
    await w.execute(DELETE_POSTINGS, ids)
    postings = [(t, r.published_at, r.article_id) for r in rows for t in sorted(set(r.postings))]
    if postings:
        await w.execute(INSERT_POSTINGS, *(list(c) for c in zip(*postings, strict=True)))
    await w.execute(DELETE_BANDS, ids)
    bands = sorted({(b, r.article_id) for r in rows for b in r.bands})
    if bands:
        await w.execute(INSERT_BANDS, *(list(c) for c in zip(*bands, strict=True)))


async def write_signals(w: Writer, rows: Sequence[SignalRow]) -> None:
    """Store each article's vector and signature, with its story and original when new (an
    article already stored keeps its story and original; it takes `story_id` if it had none)."""
    rows = sorted(rows, key=lambda r: r.article_id)
    terms, lows, highs = _flat([r.terms for r in rows])
    await w.execute(
        UPSERT_SIGNALS,
        [r.article_id for r in rows],
        [r.source_id for r in rows],
        [r.language for r in rows],
        [r.published_at for r in rows],
        [r.dated for r in rows],
        terms,
        [x for r in rows for x in r.weights],
        [x for r in rows for x in r.tfs],
        [r.signature for r in rows],
        lows,
        highs,
        [r.story_id for r in rows],
        [r.duplicate_of for r in rows],
    )


@dataclass(frozen=True, slots=True)
class DuplicateCandidate:
    article_id: int
    other_id: int
    signature: bytes
    published_at: datetime
    dated: bool
    wire: bool
    duplicate_of: int | None


# A band shared by thousands of copies (a wire story syndicated widely) must not make this
# quadratic: a few members per band are enough, as every member names the group's original.
SELECT_DUPLICATE_CANDIDATES: Final = """
SELECT DISTINCT mine.article_id, b.article_id AS other_id, s.signature, s.published_at, s.dated,
       src.is_wire_service AS wire, s.duplicate_of
FROM article_bands mine
CROSS JOIN LATERAL (
    SELECT o.article_id FROM article_bands o
    WHERE o.band = mine.band AND o.article_id <> mine.article_id
    ORDER BY o.article_id LIMIT $2
) b
LEFT JOIN article_signals s ON s.article_id = b.article_id
LEFT JOIN sources src ON src.id = s.source_id
WHERE mine.article_id = ANY($1::bigint[]) AND (s.article_id IS NULL OR s.signature IS NOT NULL)
"""


@dataclass(frozen=True, slots=True)
class BatchMember:
    """What the indexer knows of an article of its batch before its signals are written."""

    signature: bytes | None
    published_at: datetime
    dated: bool
    wire: bool


async def fetch_duplicate_candidates(
    w: Writer, batch: Mapping[int, BatchMember], article_ids: Sequence[int], per_band: int = 20
) -> list[DuplicateCandidate]:
    """Articles sharing an LSH band with any of these (signatures to verify). An article of
    the `batch` is described as the batch has it (its signals are written afterwards)."""
    rows = await w.fetch(SELECT_DUPLICATE_CANDIDATES, list(article_ids), per_band)
    found = []
    for r in rows:
        member = batch.get(r["other_id"])
        if member is None:
            if r["signature"] is None:
                continue  # gone meanwhile (a band key left by nothing else)
            found.append(DuplicateCandidate(**r))
        elif member.signature:
            found.append(
                DuplicateCandidate(
                    article_id=r["article_id"],
                    other_id=r["other_id"],
                    signature=member.signature,
                    published_at=member.published_at,
                    dated=member.dated,
                    wire=member.wire,
                    duplicate_of=r["duplicate_of"],
                )
            )
    return found


SET_DUPLICATE_OF: Final = """
UPDATE article_signals s SET duplicate_of = NULLIF(x.original, s.article_id)
FROM unnest($1::bigint[], $2::bigint[]) AS x(article_id, original)
WHERE s.article_id = x.article_id
"""
# When a new copy becomes the original of a group, the group's members follow it.
REPOINT_DUPLICATES: Final = """
UPDATE article_signals s SET duplicate_of = NULLIF(x.original, s.article_id)
FROM unnest($1::bigint[], $2::bigint[]) AS x(old, original)
WHERE s.duplicate_of = x.old
"""
SELECT_WIRE_SOURCES: Final = (
    "SELECT id FROM sources WHERE id = ANY($1::bigint[]) AND is_wire_service"
)


async def set_duplicate_of(w: Writer, originals: dict[int, int], repoint: dict[int, int]) -> None:
    """Point copies at their original (article → original); `repoint`: old original → new."""
    if repoint:
        old = sorted(repoint)
        await w.execute(REPOINT_DUPLICATES, old, [repoint[o] for o in old])
    if originals:
        ids = sorted(originals)
        await w.execute(SET_DUPLICATE_OF, ids, [originals[i] for i in ids])


async def wire_sources(w: Writer, source_ids: Sequence[int]) -> set[int]:
    return {r["id"] for r in await w.fetch(SELECT_WIRE_SOURCES, sorted(set(source_ids)))}


def _nearest_postings(limit: str) -> str:
    """The postings of term `q.term` nearest to article `p` in time, `limit` on each side
    within the window $3 (both ends of the (term, published_at, article_id) index, walked in
    order)."""
    return f"""CROSS JOIN LATERAL (
    (SELECT a.article_id FROM article_terms a
     WHERE a.term = q.term
       AND (a.published_at, a.article_id) > (p.published_at, p.article_id)
       AND a.published_at <= p.published_at + $3::interval
     ORDER BY a.published_at, a.article_id LIMIT {limit})
    UNION ALL
    (SELECT a.article_id FROM article_terms a
     WHERE a.term = q.term
       AND (a.published_at, a.article_id) < (p.published_at, p.article_id)
       AND a.published_at >= p.published_at - $3::interval
     ORDER BY a.published_at DESC, a.article_id DESC LIMIT {limit})
) t"""


NEAREST_POSTINGS: Final = _nearest_postings("$4")


# The story of a new article comes from its nearest neighbours in time that share its most
# telling terms: a few bounded index scans per article, whatever the size of the archive.
# The parents (id, date, the bounds of their terms in $2) come from the indexer's batch.
SELECT_CLUSTER_CANDIDATES: Final = f"""
SELECT p.article_id, c.article_id AS other_id, s.story_id
FROM unnest($1::bigint[], $5::timestamptz[], $6::int[], $7::int[])
    AS p(article_id, published_at, lo, hi)
CROSS JOIN LATERAL (
    SELECT DISTINCT t.article_id
    FROM unnest(($2::int[])[p.lo:p.hi]) AS q(term)
    {NEAREST_POSTINGS}
    WHERE t.article_id <> p.article_id
) c
LEFT JOIN article_signals s ON s.article_id = c.article_id
"""


SELECT_VECTORS: Final = """
SELECT article_id, terms, weights FROM article_signals WHERE article_id = ANY($1::bigint[])
"""


async def fetch_cluster_candidates(
    w: Writer,
    batch: Mapping[int, BatchMember],
    parents: Sequence[tuple[int, datetime, Sequence[int]]],
    window: timedelta,
    per_term: int,
) -> tuple[dict[int, list[tuple[int, int | None]]], dict[int, dict[int, float]]]:
    """The neighbours of each parent (id, date, the terms to look up) within `window`, as
    parent → [(neighbour, its stored story)], and each distinct neighbour's vector (term →
    weight) outside the batch: a neighbour of many articles of a batch is sent once.

    Plain tuples: a batch reads ~100 candidates per article (a NamedTuple per candidate cost
    80-170 µs per article, a frozen dataclass 2.5 times as much). A neighbour without a story
    (one of the batch, or removed meanwhile) has None; the batch's own are known from memory.
    """
    if not parents:
        return {}, {}
    terms, lows, highs = _flat([top for _, _, top in parents])
    # Fresh postings have no statistics yet, and the planner then reads each term's whole
    # posting range through a bitmap and sorts it (seconds per batch when many articles share
    # terms); the ordered index scan stops after `per_term` rows whatever the statistics say.
    # (On failure the transaction rolls back, and the setting with it.)
    await w.execute("SET LOCAL enable_bitmapscan = off")
    rows = await w.fetch(
        SELECT_CLUSTER_CANDIDATES,
        [p[0] for p in parents],
        terms,
        window,
        per_term,
        [p[1] for p in parents],
        lows,
        highs,
    )
    await w.execute("SET LOCAL enable_bitmapscan = on")
    candidates: dict[int, list[tuple[int, int | None]]] = {}
    neighbours = set()
    for article_id, other_id, story_id in rows:
        candidates.setdefault(article_id, []).append((other_id, story_id))
        if story_id is not None and other_id not in batch:
            neighbours.add(other_id)
    found = await w.fetch(SELECT_VECTORS, sorted(neighbours)) if neighbours else []
    vectors = {r["article_id"]: dict(zip(r["terms"], r["weights"], strict=True)) for r in found}
    return candidates, vectors


SELECT_STORY_IDS: Final = """
SELECT article_id, story_id FROM article_signals WHERE article_id = ANY($1::bigint[])
"""


async def fetch_story_ids(w: Writer, article_ids: Sequence[int]) -> dict[int, int | None]:
    """The story of each of these articles that has signals (None: no story yet)."""
    rows = await w.fetch(SELECT_STORY_IDS, sorted(set(article_ids)))
    return {r["article_id"]: r["story_id"] for r in rows}


CREATE_STORIES: Final = """
INSERT INTO stories (title, first_published_at, last_published_at)
SELECT * FROM unnest($1::text[], $2::timestamptz[], $2::timestamptz[])
RETURNING id
"""


async def create_stories(w: Writer, seeds: Sequence[tuple[str, datetime]]) -> list[int]:
    """New stories titled after their first article; ids in input order."""
    if not seeds:
        return []
    rows = await w.fetch(CREATE_STORIES, [s[0] for s in seeds], [s[1] for s in seeds])
    return [r["id"] for r in rows]


# Counts and date ranges of the touched stories, recomputed from their members.
REFRESH_STORIES: Final = """
UPDATE stories st SET article_count = agg.n, first_published_at = agg.first,
       last_published_at = agg.last, updated_at = now()
FROM (SELECT story_id, count(*) AS n, min(published_at) AS first, max(published_at) AS last
      FROM article_signals WHERE story_id = ANY($1::bigint[]) GROUP BY story_id) agg
WHERE st.id = agg.story_id
"""


async def refresh_stories(w: Writer, story_ids: Iterable[int]) -> None:
    """Recount these stories from their members (after the members' signals are written)."""
    ids = sorted(set(story_ids))
    if ids:
        await w.execute(REFRESH_STORIES, ids)


MERGE_STORY_MEMBERS: Final = (
    "UPDATE article_signals SET story_id = $1 WHERE story_id = ANY($2::bigint[])"
)
MERGE_STORY_ROWS: Final = """
UPDATE stories SET merged_into = $1, article_count = 0, updated_at = now()
WHERE id = ANY($2::bigint[]) OR merged_into = ANY($2::bigint[])
"""


async def merge_stories(w: Writer, into: int, others: Sequence[int]) -> None:
    """Move the members of `others` to `into`; the old ids then resolve to `into`."""
    merged = sorted(set(others) - {into})
    if not merged:
        return
    await w.execute(MERGE_STORY_MEMBERS, into, merged)
    await w.execute(MERGE_STORY_ROWS, into, merged)
    await w.execute(REFRESH_STORIES, [into])


# ---- reads -------------------------------------------------------------------------------


# An article's stored terms, and their weights or frequencies: lists, or the arrays
# `fetch_candidates` reads (see `_unpack`).
Terms = Sequence[int] | NDArray[np.int32]
Values = Sequence[float] | NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Candidate:
    """A possible related article of `parent`, with what scoring needs.

    `tfs` is None for an article indexed before migration 0010 (`weights` as stored); when
    `tfs` is given, `fetch_candidates` leaves out `weights` (None): ranking weighs `tfs`."""

    parent: int
    article_id: int
    source_id: int
    language: str
    published_at: datetime
    dated: bool
    story_id: int | None
    duplicate_of: int | None
    terms: Terms
    weights: Values | None
    shared_entities: list[int]
    tfs: Values | None = None


@dataclass(frozen=True, slots=True)
class ParentSignals:
    article_id: int
    source_id: int
    published_at: datetime
    dated: bool
    story_id: int | None
    duplicate_of: int | None
    terms: Terms
    weights: Values | None
    tfs: Values | None = None


# Candidates from four indexes, each bounded: postings of the parent's heaviest terms nearest
# in time (both sides; half as many for its terms after the $8 heaviest), members of its
# story, copies in its duplicate group, and articles sharing its most salient entities.
# Excluded articles never come back. Each parent's own row comes back too (article_id =
# parent): its signals, in the same statement.
SELECT_CANDIDATES: Final = f"""
WITH parents AS (
    SELECT s.*, coalesce(s.duplicate_of, s.article_id) AS dup_root,
           ARRAY(SELECT ae.entity_id FROM article_entities ae WHERE ae.article_id = s.article_id
                 ORDER BY ae.salience DESC, ae.entity_id LIMIT $5) AS entity_ids
    FROM article_signals s WHERE s.article_id = ANY($1::bigint[])
),
found AS (
    SELECT p.article_id AS parent, c.article_id
    FROM parents p
    CROSS JOIN LATERAL (
        SELECT t.article_id, sum(q.weight) AS hits
        FROM unnest(p.terms[1:$2], p.weights[1:$2]) WITH ORDINALITY AS q(term, weight, i)
        {_nearest_postings("CASE WHEN q.i <= $8 THEN $4 ELSE $4 / 2 END")}
        GROUP BY t.article_id ORDER BY hits DESC, t.article_id LIMIT $6
    ) c
    UNION
    SELECT p.article_id, m.article_id
    FROM parents p
    CROSS JOIN LATERAL (
        SELECT m.article_id FROM article_signals m
        WHERE m.story_id = p.story_id
          AND m.published_at >= p.published_at - $3::interval
          AND m.published_at <= p.published_at + $3::interval
        ORDER BY m.published_at DESC, m.article_id DESC LIMIT $4
    ) m
    UNION
    SELECT p.article_id, d.article_id
    FROM parents p
    CROSS JOIN LATERAL (
        SELECT d.article_id FROM article_signals d
        WHERE d.duplicate_of = p.dup_root OR d.article_id = p.dup_root LIMIT $4
    ) d
    UNION
    SELECT p.article_id, e.article_id
    FROM parents p
    CROSS JOIN LATERAL unnest(p.entity_ids) AS pe(entity_id)
    CROSS JOIN LATERAL (
        SELECT ae.article_id FROM article_entities ae
        WHERE ae.entity_id = pe.entity_id
          AND ae.published_at >= p.published_at - $3::interval
          AND ae.published_at <= p.published_at + $3::interval
        ORDER BY ae.published_at DESC, ae.article_id DESC LIMIT $7
    ) e
    UNION
    SELECT p.article_id, p.article_id FROM parents p
)
SELECT f.parent, s.article_id, s.source_id, s.language, s.published_at, s.dated, s.story_id,
       s.duplicate_of, array_send(s.terms) AS terms,
       array_send(CASE WHEN s.tfs IS NULL THEN s.weights END) AS weights,
       array_send(s.tfs) AS tfs,
       ARRAY(SELECT ae.entity_id FROM article_entities ae
             WHERE ae.article_id = s.article_id AND ae.entity_id = ANY(p.entity_ids)
             ORDER BY ae.entity_id) AS shared_entities
FROM found f
JOIN parents p ON p.article_id = f.parent
JOIN article_signals s ON s.article_id = f.article_id
WHERE s.article_id = f.parent
   OR (NOT s.exclude_from_related
       AND s.published_at BETWEEN p.published_at - $3::interval AND p.published_at + $3::interval)
"""


async def fetch_candidates(
    db: Database,
    parents: Sequence[int],
    *,
    window: timedelta,
    terms: int,
    per_list: int,
    entities: int,
    by_terms: int,
    per_entity: int,
    deep_terms: int,
) -> tuple[dict[int, ParentSignals], list[Candidate]]:
    """The signals of each parent and its related-article candidates (one statement for all
    of them); parents without signals are left out. The postings of the parent's first
    `deep_terms` terms are read `per_list` deep on each side, those of the rest half as deep."""
    rows = await db.fetch(
        SELECT_CANDIDATES, list(parents), terms, window, per_list, entities, by_terms,
        per_entity, deep_terms,
    )  # fmt: skip
    signals: dict[int, ParentSignals] = {}
    candidates: list[Candidate] = []
    # By position, in SELECT_CANDIDATES' order: ~150 rows a list, and building each from a
    # dict of its columns took twice as long (1.19 against 0.69 ms for 142 rows, by hand).
    for (
        parent, article_id, source_id, language, published_at, dated, story_id, duplicate_of,
        term_ids, stored_weights, frequencies, shared_entities,
    ) in rows:  # fmt: skip
        if article_id == parent:
            signals[parent] = ParentSignals(
                article_id, source_id, published_at, dated, story_id, duplicate_of,
                _unpack(term_ids, ">i4"), _unpack(stored_weights, ">f4"),
                _unpack(frequencies, ">f4"),
            )  # fmt: skip
        else:
            candidate = Candidate(
                parent, article_id, source_id, language, published_at, dated, story_id,
                duplicate_of, _unpack(term_ids, ">i4"), _unpack(stored_weights, ">f4"),
                shared_entities, _unpack(frequencies, ">f4"),
            )  # fmt: skip
            candidates.append(candidate)
    return signals, candidates


# PostgreSQL's binary form of a one-dimensional array without NULLs (`array_send`): five
# big-endian int4 (dimensions, NULL flag, element type, length, lower bound), then each
# element as its byte length (4) and its bytes; an empty array is the first three alone.
# Read as a NumPy view of the big-endian elements (ranking converts all members' at once)
# instead of a Python number per element: a list's ~110 candidates carry ~22,000 of them.
_EMPTY: Final = 12
_HEADER: Final = 20


@overload
def _unpack(raw: bytes, element: str) -> NDArray[Any]: ...
@overload
def _unpack(raw: None, element: str) -> None: ...
def _unpack(raw: bytes | None, element: str) -> NDArray[Any] | None:
    """The elements of an `array_send` value of int4 (`element` ">i4") or float4 (">f4")
    elements, as a read-only view; None stays None."""
    if raw is None:
        return None
    if len(raw) == _EMPTY:
        return np.empty(0, element)
    if raw[3] != 1 or raw[7] != 0:  # dimensions, NULL flag
        raise ValueError("expected a one-dimensional array without NULLs")
    return np.frombuffer(raw, element, offset=_HEADER)[1::2]


# Document frequencies of the given terms now, and the number of documents counted.
SELECT_TERM_STATS: Final = """
SELECT (SELECT documents FROM related_stats WHERE id) AS documents,
       coalesce(array_agg(term ORDER BY term), '{}') AS terms,
       coalesce(array_agg(df ORDER BY term), '{}') AS dfs
FROM term_stats WHERE term = ANY($1::text::int[])
"""


async def fetch_term_stats(db: Database, terms: Sequence[int]) -> tuple[int, list[int], list[int]]:
    """(documents, terms in ascending order, their document frequencies): one row, two
    arrays (cheaper to decode than a row per term). Unknown terms are left out."""
    # As text: asyncpg checks every element of a list argument (thousands here).
    row = await db.fetchrow(SELECT_TERM_STATS, "{" + ",".join(map(str, terms)) + "}")
    assert row is not None
    return int(row["documents"] or 0), list(row["terms"]), list(row["dfs"])


STORY_COLUMNS: Final = (
    "st.id, st.title, st.article_count, st.first_published_at, st.last_published_at"
)
# A merged id resolves to the story it was merged into (chains are kept one hop long).
SELECT_STORIES_BY_IDS: Final = f"""
SELECT x.id AS asked, {STORY_COLUMNS}
FROM unnest($1::bigint[]) AS x(id)
JOIN stories old ON old.id = x.id
JOIN stories st ON st.id = coalesce(old.merged_into, old.id)
"""


async def fetch_stories_by_ids(db: Database, ids: Sequence[int]) -> dict[int, StoryRecord]:
    rows = await db.fetch(SELECT_STORIES_BY_IDS, list(ids))
    return {r["asked"]: StoryRecord(**{k: v for k, v in r.items() if k != "asked"}) for r in rows}


SELECT_STORY_ARTICLES: Final = """
SELECT x.story_id, m.article_id, m.published_at
FROM unnest($1::bigint[]) AS x(story_id)
CROSS JOIN LATERAL (
    SELECT s.article_id, s.published_at FROM article_signals s
    WHERE s.story_id = x.story_id
      AND ($2::timestamptz IS NULL OR (s.published_at, s.article_id) < ($2, $3::bigint))
    ORDER BY s.published_at DESC, s.article_id DESC LIMIT $4
) m
"""


async def fetch_story_articles(
    db: Database, story_ids: Sequence[int], after: tuple[datetime, int] | None, limit: int
) -> dict[int, list[tuple[int, datetime]]]:
    """Each story's articles, newest first (keyset on published_at, id)."""
    rows = await db.fetch(
        SELECT_STORY_ARTICLES, list(story_ids), after[0] if after else None,
        after[1] if after else None, limit,
    )  # fmt: skip
    found: dict[int, list[tuple[int, datetime]]] = {}
    for r in rows:
        found.setdefault(r["story_id"], []).append((r["article_id"], r["published_at"]))
    return found


SELECT_STORY_SOURCE_COUNTS: Final = """
SELECT story_id, count(DISTINCT source_id) AS n FROM article_signals
WHERE story_id = ANY($1::bigint[]) GROUP BY story_id
"""


async def fetch_story_source_counts(db: Database, story_ids: Sequence[int]) -> dict[int, int]:
    rows = await db.fetch(SELECT_STORY_SOURCE_COUNTS, list(story_ids))
    return {r["story_id"]: r["n"] for r in rows}


# The entities most of a story's (latest 200) articles mention, by summed salience.
SELECT_STORY_ENTITIES: Final = """
SELECT x.story_id, e.entity_id
FROM unnest($1::bigint[]) AS x(story_id)
CROSS JOIN LATERAL (
    SELECT ae.entity_id, sum(ae.salience) AS weight
    FROM (SELECT s.article_id FROM article_signals s WHERE s.story_id = x.story_id
          ORDER BY s.published_at DESC LIMIT 200) m
    JOIN article_entities ae ON ae.article_id = m.article_id
    GROUP BY ae.entity_id ORDER BY weight DESC, ae.entity_id LIMIT $2
) e
"""


async def fetch_story_entities(
    db: Database, story_ids: Sequence[int], limit: int
) -> dict[int, list[int]]:
    rows = await db.fetch(SELECT_STORY_ENTITIES, list(story_ids), limit)
    found: dict[int, list[int]] = {}
    for r in rows:
        found.setdefault(r["story_id"], []).append(r["entity_id"])
    return found


async def list_stories(
    db: Database,
    *,
    after: tuple[datetime, int] | None,
    limit: int,
    published_after: datetime | None = None,
    min_articles: int = 1,
) -> list[StoryRecord]:
    """Live stories, most recently updated first (keyset on last_published_at, id)."""
    params: list[object] = []

    def p(value: object) -> str:
        params.append(value)
        return f"${len(params)}"

    where = ["st.merged_into IS NULL", f"st.article_count >= {p(min_articles)}"]
    if after is not None:
        where.append(f"(st.last_published_at, st.id) < ({p(after[0])}, {p(after[1])})")
    if published_after is not None:
        where.append(f"st.last_published_at >= {p(published_after)}")
    sql = (
        f"SELECT {STORY_COLUMNS} FROM stories st WHERE {' AND '.join(where)} "
        f"ORDER BY st.last_published_at DESC, st.id DESC LIMIT {p(limit)}"
    )
    return [StoryRecord(**r) for r in await db.fetch(sql, *params)]


SELECT_DUPLICATES: Final = """
SELECT s.article_id, s.story_id, s.duplicate_of, s.exclude_from_related,
       ARRAY(SELECT d.article_id FROM article_signals d WHERE d.duplicate_of = s.article_id
             ORDER BY d.published_at, d.article_id LIMIT 100) AS copies
FROM article_signals s WHERE s.article_id = ANY($1::bigint[])
"""


@dataclass(frozen=True, slots=True)
class ArticleRelations:
    article_id: int
    story_id: int | None
    duplicate_of: int | None
    exclude_from_related: bool
    copies: list[int]


async def fetch_duplicates(db: Database, ids: Sequence[int]) -> dict[int, ArticleRelations]:
    """Each article's story, original and copies (at most 100), and its editorial flag."""
    rows = await db.fetch(SELECT_DUPLICATES, list(ids))
    return {r["article_id"]: ArticleRelations(**r) for r in rows}


SET_EXCLUDE: Final = """
UPDATE article_signals SET exclude_from_related = $2 WHERE article_id = $1 RETURNING article_id
"""


async def set_exclude_from_related(db: Database, article_id: int, exclude: bool) -> bool:
    """False when the article is unknown (or has no signals yet)."""
    async with db.transaction() as w:
        return await w.fetchval(SET_EXCLUDE, article_id, exclude) is not None


SET_WIRE: Final = "UPDATE sources SET is_wire_service = $2 WHERE id = $1 RETURNING id"


async def set_wire_service(db: Database, source_id: int, wire: bool) -> bool:
    async with db.transaction() as w:
        return await w.fetchval(SET_WIRE, source_id, wire) is not None
