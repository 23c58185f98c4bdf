"""Text features: stable term ids, TF-IDF vectors, MinHash signatures and LSH band keys."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.related import features as F

_SPARSE = st.dictionaries(
    st.integers(0, 50), st.floats(0.0, 1.0, allow_nan=False, allow_infinity=False), max_size=10
)

LEAD = (
    "The central bank of Norway raised its policy rate by a quarter point to 4.5 percent on "
    "Thursday, its highest since 2008, and said it would likely keep it there for some time."
)


def test_title_words_weigh_more_and_stopwords_are_dropped() -> None:
    counts = F.term_counts("Volcano erupts", None, "The volcano erupts again")
    volcano = F._term_id("volcano")
    assert counts[volcano] == F.TITLE_WEIGHT * F.NAME_WEIGHT + 1.0  # capitalised in the title
    assert F._term_id("the") not in counts


def test_vectors_are_unit_length_and_rare_terms_weigh_more() -> None:
    counts = F.term_counts("Grindavik volcano", None, None)
    df = {F._term_id("volcano"): 50, F._term_id("grindavik"): 1}
    vector = F.vector(counts, df, 100)
    assert abs(sum(w * w for w in vector.values()) - 1.0) < 1e-9
    assert vector[F._term_id("grindavik")] > vector[F._term_id("volcano")]
    assert F.cosine(vector, vector) > 0.999


def test_copies_share_band_keys_and_other_texts_do_not() -> None:
    a = F.text_features("Rates up", None, LEAD)
    b = F.text_features("Rates up", None, LEAD + " Analysts had expected it.")
    c = F.text_features("City win", None, "Manchester City beat Arsenal 4-1 at the Etihad to "
                        "move top of the Premier League with two goals from De Bruyne.")  # fmt: skip
    assert len(a.bands) == len(b.bands) > 1
    assert F.jaccard(a.signature, b.signature) >= F.DUPLICATE_THRESHOLD
    assert set(a.bands) & set(b.bands)
    assert F.jaccard(a.signature, c.signature) < 0.2
    assert not set(a.bands) & set(c.bands)


def test_signatures_are_the_same_in_every_process() -> None:
    # Stored signatures and band keys must not depend on the process (no salted hashing).
    first = F.text_features("Rates up", None, LEAD)
    assert first.bands == F.text_features("Rates up", None, LEAD).bands
    assert F._term_id("volcano") == -247341386  # crc32, as stored in article_terms


def test_short_texts_have_no_signature() -> None:
    features = F.text_features("Short", None, "Too short to compare.")
    assert features.signature == b""
    assert features.bands == ()


@given(
    rows=st.lists(_SPARSE, max_size=8),
    columns=st.dictionaries(st.integers(0, 30), _SPARSE, max_size=12),
    data=st.data(),
)
def test_dot_products_are_the_cosines_of_each_pair(
    rows: list[dict[int, float]], columns: dict[int, dict[int, float]], data: st.DataObject
) -> None:
    keys = st.integers(0, 40)  # some name no column: an empty vector
    pairs = [data.draw(st.lists(keys, max_size=6)) for _ in rows]
    found = F.dot_products(rows, columns, pairs)
    assert [len(p) for p in found] == [len(p) for p in pairs]
    for row, keys_of_row, dots in zip(rows, pairs, found, strict=True):
        for key, dot in zip(keys_of_row, dots, strict=True):
            assert math.isclose(dot, F.cosine(row, columns.get(key, {})), abs_tol=1e-9)


def test_dot_products_span_chunks_of_rows() -> None:
    rng = random.Random(7)
    rows = [{rng.randrange(500): rng.random() for _ in range(40)} for _ in range(F.DOT_CHUNK + 30)]
    columns = {k: {rng.randrange(500): rng.random() for _ in range(60)} for k in range(300)}
    pairs = [rng.sample(range(300), 20) for _ in rows]
    found = F.dot_products(rows, columns, pairs)
    expected = [[F.cosine(r, columns[k]) for k in p] for r, p in zip(rows, pairs, strict=True)]
    assert len(found) == len(expected)
    for got, want in zip(found, expected, strict=True):
        assert got == [pytest.approx(w, abs=1e-9) for w in want]
