"""Text features: stable term ids, TF-IDF vectors, MinHash signatures and LSH band keys; and
how much of a stored body the indexer reads for them."""

from __future__ import annotations

from service.db.pool import Database
from service.ingest.pipeline import ingest_batch
from service.related import features as F
from service.related.indexer import drain
from tests.factories import article_input

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


async def test_the_indexer_reads_the_first_4000_characters_of_a_body(write_db: Database) -> None:
    # Function words only (no terms) around two names: one 3,000 characters in, where the
    # details that tell two events apart often are, one past the prefix.
    filler = "and the of " * 300  # 3,300 characters
    body = f"{filler}Zorblatt {filler}Quixotl"
    assert 2000 < body.index("Zorblatt") < 4000 < body.index("Quixotl")
    items = [article_input(url="https://prefix.example/a", title="Harbour news", body=body)]
    [result] = await ingest_batch(write_db, items)
    assert result.article_id is not None
    await drain(write_db)
    terms = await write_db.fetchval(
        "SELECT terms FROM article_signals WHERE article_id = $1", result.article_id
    )
    assert F._term_id("zorblatt") in terms
    assert F._term_id("quixotl") not in terms
