"""Text features of one article, computed at ingest (pure: no IO).

Two kinds, for two questions:
- *terms*: weighted words of the title, summary and the start of the body (title words count
  most, capitalised words a little more: names are what tell two events of one kind apart).
  With document frequencies they become a TF-IDF vector, the text signal of related stories.
- *MinHash*: a datasketch MinHash of word shingles of the text's start, banded as datasketch's
  MinHashLSH bands it; equal band keys find near-identical texts (wire copies) through an index.
"""

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache, lru_cache
from typing import Final

import numpy as np
from datasketch import LeanMinHash, MinHash, MinHashLSH

__all__ = [
    "DUPLICATE_THRESHOLD",
    "NUM_PERM",
    "TextFeatures",
    "band_keys",
    "idf",
    "jaccard",
    "minhash",
    "term_counts",
    "text_features",
    "tf",
    "vector",
]

# Only the start of a body is read: a bounded prefix keeps the cost per article flat however
# long the text is. The lead carries the story, but what tells two events of one kind apart
# often follows it: 4,000 characters instead of 2,000 took ECB+ R-precision from 0.909 to
# 0.915 (bench/relevance.py; every prefix from 3,000 up did better than 2,000).
TERM_PREFIX: Final = 4000
SHINGLE_PREFIX: Final = 800
SHINGLE_WORDS: Final = 4
NUM_PERM: Final = 64
# Stored signatures are only comparable under one scheme and seed: changing either means
# recomputing every signature (datasketch 2 made the scheme explicit for this reason).
SCHEME: Final = "affine32"
SEED: Final = 1
DUPLICATE_THRESHOLD: Final = 0.8
VECTOR_TERMS: Final = 96
TITLE_WEIGHT: Final = 3.0
SUMMARY_WEIGHT: Final = 2.0
NAME_WEIGHT: Final = 2.0

_WORD: Final = re.compile(r"[^\W_]+(?:['’.-][^\W_]+)*")

# Function words of the languages we serve most; IDF takes care of the rest, this only keeps
# them from taking places in the bounded vector.
_STOPWORD_TEXT: Final = """
    a about after again against all also am an and any are as at be because been before
    being between both but by can could did do does doing down during each few for from further
    had has have having he her here hers him his how i if in into is it its itself just me more
    most my no nor not now of off on once only or other our out over own said same she should so
    some such than that the their them then there these they this those through to too under
    until up very was we were what when where which while who whom why will with would you your
    says say new one two year years told mr mrs ms
    og i en et det som er på til av for med har de den ikke om var seg fra vil kan han hun
    der die das und zu den von mit sich des auf ist im nicht ein eine als auch es an le la les
    de des du un une et en est pour que qui dans el los las y del por con"""
STOPWORDS: Final = frozenset(_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    # A light, language-blind suffix fold: plurals and possessives meet their singular.
    if word.endswith(("'s", "’s")):
        word = word[:-2]
    if len(word) > 4 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        word = word[:-1]
    return word


def _term_id(word: str) -> int:
    # crc32 is stable across processes and releases (Python's hash() is salted); signed to
    # fit PostgreSQL's integer.
    value = zlib.crc32(word.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


@lru_cache(maxsize=1 << 15)
def _term(raw: str) -> tuple[int, float] | None:
    """A word as written → its term id and weight boost; None for words that are no term.
    Cached: news repeats its words, and the chain below costs ~1 µs a word (the cache cut
    `term_counts` by ~30 % on the bench articles: `bench/ingest_stages.py`)."""
    lower = raw.lower()
    if lower in STOPWORDS or len(lower) < 2:
        return None
    return _term_id(_stem(lower)), NAME_WEIGHT if raw[0].isupper() else 1.0


def term_counts(title: str, summary: str | None, body: str | None) -> dict[int, float]:
    """Weighted counts of each term id in the text."""
    counts: dict[int, float] = {}
    for text, weight in (
        (title, TITLE_WEIGHT),
        (summary or "", SUMMARY_WEIGHT),
        ((body or "")[:TERM_PREFIX], 1.0),
    ):
        for raw, n in Counter(_WORD.findall(text)).items():
            found = _term(raw)
            if found is not None:
                term, boost = found
                counts[term] = counts.get(term, 0.0) + n * weight * boost
    return counts


def tf(count: float) -> float:
    """Sublinear term frequency (what `vector` weighs by IDF)."""
    return 1.0 + math.log(count)


def idf(df: int, documents: int) -> float:
    """Smoothed inverse document frequency (as scikit-learn's TfidfVectorizer)."""
    return math.log((documents + 1) / (df + 1)) + 1.0


def vector(
    counts: Mapping[int, float], df: Mapping[int, int], documents: int, size: int = VECTOR_TERMS
) -> dict[int, float]:
    """The L2-normalised TF-IDF vector of the `size` heaviest terms (sublinear tf)."""
    weights = {
        term: tf(count) * idf(df.get(term, 0), documents)
        for term, count in counts.items()
        if count > 0
    }
    top = sorted(weights.items(), key=lambda kv: (-kv[1], kv[0]))[:size]
    norm = math.sqrt(sum(w * w for _, w in top)) or 1.0
    return {term: w / norm for term, w in top}


def cosine(a: Mapping[int, float], b: Mapping[int, float]) -> float:
    if len(b) < len(a):
        a, b = b, a
    return sum(w * b.get(t, 0.0) for t, w in a.items())


@dataclass(frozen=True, slots=True)
class TextFeatures:
    counts: dict[int, float]
    signature: bytes  # MinHash hash values, uint64 little-endian
    bands: tuple[int, ...]


@cache
def _lsh_layout() -> tuple[tuple[int, int], ...]:
    # datasketch picks bands × rows that minimise false positives and negatives for the
    # threshold; we keep its banding and store the band keys in PostgreSQL instead of memory.
    lsh = MinHashLSH(threshold=DUPLICATE_THRESHOLD, num_perm=NUM_PERM)
    return tuple(lsh.hashranges)


@cache
def _permutations() -> MinHash:
    return MinHash(num_perm=NUM_PERM, seed=SEED, scheme=SCHEME)


def minhash(text: str) -> LeanMinHash | None:
    """The MinHash of the text's word shingles; None for texts too short to compare."""
    words = [w.lower() for w in _WORD.findall(text[:SHINGLE_PREFIX])]
    if len(words) < 2 * SHINGLE_WORDS:
        return None
    shingles = {
        " ".join(words[i : i + SHINGLE_WORDS]).encode()
        for i in range(len(words) - SHINGLE_WORDS + 1)
    }
    m = MinHash(
        num_perm=NUM_PERM,
        seed=SEED,
        scheme=SCHEME,
        permutations=_permutations().permutations,
        hashfunc=zlib.crc32,  # a 32-bit hash as the scheme needs; sha1 cost twice as much
    )
    m.update_batch(list(shingles))
    return LeanMinHash(m)


def band_keys(m: LeanMinHash) -> tuple[int, ...]:
    """One signed 64-bit key per LSH band (the band index is part of the key)."""
    keys = []
    for index, (start, end) in enumerate(_lsh_layout()):
        digest = hashlib.blake2b(
            bytes([index]) + m.hashvalues[start:end].tobytes(), digest_size=8
        ).digest()
        keys.append(int.from_bytes(digest, "little", signed=True))
    return tuple(keys)


def jaccard(a: bytes, b: bytes) -> float:
    """Estimated Jaccard similarity of two stored signatures."""
    x = np.frombuffer(a, dtype=np.uint64)
    y = np.frombuffer(b, dtype=np.uint64)
    if len(x) != len(y) or not len(x):
        return 0.0
    return float(np.count_nonzero(x == y)) / len(x)


def text_features(title: str, summary: str | None, body: str | None) -> TextFeatures:
    counts = term_counts(title, summary, body)
    text = " ".join(t for t in (title, summary, body) if t)
    m = minhash(text)
    if m is None:
        return TextFeatures(counts, b"", ())
    return TextFeatures(counts, m.hashvalues.astype("<u8").tobytes(), band_keys(m))


def top_terms(v: Mapping[int, float], n: int) -> list[int]:
    return [t for t, _ in sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))[:n]]


def merge_counts(parts: Iterable[Mapping[int, float]]) -> Counter[int]:
    """Document frequencies contributed by these articles (each term once per article)."""
    df: Counter[int] = Counter()
    for counts in parts:
        df.update(counts.keys())
    return df
