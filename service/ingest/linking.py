"""Entity linking: find the catalogue's names and aliases in an article's text.

Pure computation, no IO: `Linker.build` turns the catalogue's surfaces (each name and alias of
each entity) into one Aho-Corasick automaton (pyahocorasick), and `Linker.link` runs it once
over the article's title, summary and body and returns one `Mention` per linked entity.
Building a large catalogue takes seconds, so callers build in a worker thread and swap the
finished linker in (`service.ingest.catalogue.LinkerCache`). A built linker is never modified,
so threads may share it (pyahocorasick's search keeps its state in each iterator and runs
under the GIL). `make_automaton` holds the GIL throughout, though: ~1.5 s for a million
surfaces, during which no other thread (the event loop included) runs.

How text is matched
-------------------
* Folding. Text and surfaces go through the same `fold`: lower case, accents removed (NFKD
  minus combining marks, as the database's `search_key = lower(unaccent(…))` does: é→e, å→a,
  ü→u; also ł→l, đ/ð→d), and every character that is not a letter or digit becomes a space.
  Folding maps one character to exactly one character, so an offset in the folded text is the
  same offset in the original, where the case rules look. Letters without a decomposition
  stay as they are: æ, ø and ß (`unaccent` spells them "ae", "o", "ss"); that keeps "Støre"
  apart from the Norwegian word "Store", and is the same on both sides.
* Whole words. Each surface is stored as " folded surface " (a space on both sides) and the
  text is searched with a space at each end, so a match can only start and end at a word
  boundary: "Hamas" is not found in "Hamasville", nor "EU" in "EUR". Word characters are
  Unicode letters and digits (æ, ø and å included); punctuation inside a surface matches any
  punctuation or space ("al-Maliki" also finds "al Maliki"), and leading or trailing
  punctuation of a surface is ignored ("U.S." is stored as "U.S").
  Surfaces shorter than two characters are not linked (a lone letter is noise).
* Case. A surface of at most three letters, or written in capitals ("NATO", "U.S."), matches
  only the exact same characters in the text. Any other surface that starts with a capital
  letter matches only where the text also starts it with a capital: "Apple" links
  "Apple said" and "APPLE", never "an apple a day". A surface that starts in lower case
  ("al-Maliki", "iPhone") matches in any case.
* Longest match. Of overlapping matches, the one that starts first wins, and of those that
  start together the longest: "New York Times" beats "New York"; matches never overlap.
* Ambiguity. A surface shared by several entities ("Washington": the city, the state, the
  president) goes to the candidate with the most *other* distinct surfaces found in the same
  document ("George Washington" earlier in the text makes "Washington" the president), then
  the most popular (`Surface.popularity`, the entity's article count), then the lowest id. All
  occurrences of a surface in one document with the same candidates link to the same entity.

Salience
--------
Each linked entity gets a salience in (0, 1], rounded to 3 decimals, the sum of:
0.40 if it is in the title; 0.20 if it is in the summary (or, when there is no summary, in the
first 300 characters of the body); up to 0.15 for how early its first body mention is
(0.15 × (1 − offset / body length)); and 0.25 × min(mentions, 5) / 5 for frequency. A fully
prominent entity reaches 1.0; one mention at the end of a long body scores about 0.05.
`mention_count` counts the entity's matches over title, summary and body. Mentions come
sorted by salience, then mention count (both descending), then entity id.
"""

from __future__ import annotations

import codecs
import gc
import unicodedata
from bisect import bisect_left
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

import ahocorasick  # type: ignore[import-not-found]

__all__ = ["Linker", "Mention", "Surface", "fold"]


@dataclass(frozen=True, slots=True)
class Surface:
    """A name or alias of a catalogue entity (`popularity`: its article count).

    `kind` travels with the surface for callers; the linking rules do not use it.
    """

    entity_id: int
    text: str
    kind: str
    popularity: int


@dataclass(frozen=True, slots=True)
class Mention:
    """An entity linked in one article."""

    entity_id: int
    salience: float
    mention_count: int


# Joins title, summary and body: kept by `fold` and never part of a stored key, so no match
# spans two fields. PostgreSQL text cannot hold NUL, so no stored article contains it.
_SEPARATOR: Final = "\x00"

# Letters without a Unicode decomposition that unaccent() reduces to one Latin letter (but not
# æ and ø, which Norwegian text needs apart from a, e and o).
_EXTRA_FOLDS: Final = {
    "ł": "l",
    "Ł": "l",
    "đ": "d",
    "Đ": "d",
    "ð": "d",
    "Ð": "d",
    "ħ": "h",
    "Ħ": "h",
    "ı": "i",
}


def _fold_char(char: str) -> str:
    if char == _SEPARATOR:
        return char
    if unicodedata.category(char).startswith("M"):
        # A combining mark that NFC could not compose stays part of its word.
        return char
    if not char.isalnum():
        return " "
    if char in _EXTRA_FOLDS:
        return _EXTRA_FOLDS[char]
    decomposed = unicodedata.normalize("NFKD", char)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c)).lower()
    # Latin-1 must fold within Latin-1 (the fast path translates bytes), e.g. µ stays µ.
    if len(bare) == 1 and bare.isalnum() and (ord(char) > 0xFF or ord(bare) <= 0xFF):
        return bare
    lower = char.lower()
    if len(lower) == 1 and (ord(char) > 0xFF or ord(lower) <= 0xFF):
        return lower
    return char


_LATIN1_TABLE: Final = bytes(ord(_fold_char(chr(i))) for i in range(256))

# Punctuation outside Latin-1 that news text uses often: replaced up front so that such text
# still takes the fast Latin-1 path. Each folds to a space anyway, so the result is the same.
_COMMON_PUNCTUATION: Final = tuple(
    "\u2018\u2019\u201a\u201b\u201c\u201d\u201e\u201f\u2010\u2011\u2012\u2013\u2014\u2015"
    "\u2026\u2022\u2032\u2033\u2039\u203a\u20ac\u2009\u200a\u200b\u202f\u2060\ufeff"
)


@cache
def _bmp_table() -> list[str]:
    # Built on first use (~0.1 s): only text with characters beyond Latin-1 needs it.
    return [_fold_char(chr(i)) for i in range(0x10000)]


def _fold_beyond_latin1(error: UnicodeError) -> tuple[str, int]:
    """Encoding error handler: fold the characters Latin-1 lacks ("ğ" -> "g", "–" -> " ")."""
    if not isinstance(error, UnicodeEncodeError):
        raise error
    # Characters that do not fold into Latin-1 (Cyrillic, emoji) make the encoder raise, and
    # `fold` then translates the whole text instead.
    return error.object[error.start : error.end].translate(_bmp_table()), error.end


_ERRORS: Final = "newsgraph-fold"
codecs.register_error(_ERRORS, _fold_beyond_latin1)


def fold(text: str) -> str:
    """`text` lower-cased, accent-free, non-word characters as spaces; same length.

    Characters beyond the Basic Multilingual Plane (emoji) are left as they are.
    """
    if text.isascii():
        return text.encode("ascii").translate(_LATIN1_TABLE).decode("ascii")
    # Fast paths: translating Latin-1 bytes is ~20 times faster than translating a str.
    for mark in _COMMON_PUNCTUATION:
        if mark in text:
            text = text.replace(mark, " ")
    try:
        raw = text.encode("latin-1", _ERRORS)
    except UnicodeEncodeError:
        return text.translate(_bmp_table())
    return raw.translate(_LATIN1_TABLE).decode("latin-1")


def _nfc(text: str) -> str:
    if text.isascii() or unicodedata.is_normalized("NFC", text):
        return text
    return unicodedata.normalize("NFC", text)


# How a stored surface accepts an occurrence in the text (see "Case" above).
_EXACT: Final = 0
_CAPITALISED: Final = 1
_ANY_CASE: Final = 2

_TITLE_WEIGHT: Final = 0.40
_LEAD_WEIGHT: Final = 0.20
_POSITION_WEIGHT: Final = 0.15
_FREQUENCY_WEIGHT: Final = 0.25
_FREQUENCY_CAP: Final = 5
_LEAD_CHARS: Final = 300
_FREQUENCY: Final = tuple(_FREQUENCY_WEIGHT * n / _FREQUENCY_CAP for n in range(_FREQUENCY_CAP + 1))

_Ids = tuple[int, ...]
# One per folded key: (length, offset of its first letter, entities when the text has a
# capital there, entities otherwise, exact spelling -> entities for the case-sensitive ones).
_Key = tuple[int, int, _Ids, _Ids, dict[str, _Ids] | None]
# A match: (start, end, key number, candidate entities).
_Hit = tuple[int, int, int, _Ids]


def _rule(text: str) -> tuple[str, int, str] | None:
    """(folded key, case rule, text as written) of a surface, or None when it is not linked."""
    text = _nfc(text)
    if _SEPARATOR in text:
        return None
    folded = fold(text)
    key = folded.strip(" ")
    if len(key) < 2:
        return None
    # Leading and trailing punctuation is not part of the surface.
    written = text if len(key) == len(text) else text[folded.find(key) :][: len(key)]
    if written.upper() == written:
        return key, _EXACT, written
    letters = len(key) - key.count(" ")
    if letters > 3 and not key.replace(" ", "").isalpha():
        letters = sum(map(str.isalpha, key))
    if letters <= 3:
        return key, _EXACT, written
    return key, _CAPITALISED if written[_first_letter(key)].isupper() else _ANY_CASE, written


def _first_letter(key: str) -> int:
    if key[0].isalpha():
        return 0
    return next((i for i, c in enumerate(key) if c.isalpha()), 0)


# A surface while building: (entity id, case rule, text as written).
_Entry = tuple[int, int, str]


def _record(key: str, group: _Entry | list[_Entry], rank: dict[int, int]) -> _Key:
    """The matching data of one key from the surfaces that fold to it."""
    first = _first_letter(key)
    if isinstance(group, tuple):  # one surface, by far the most common case
        entity_id, rule, written = group
        ids = (entity_id,)
        if rule == _CAPITALISED:
            return len(key), first, ids, (), None
        if rule == _ANY_CASE:
            return len(key), first, ids, ids, None
        return len(key), first, (), (), {written: ids}
    any_case: dict[int, None] = {}
    capitalised: dict[int, None] = {}
    exact: dict[str, dict[int, None]] = {}
    for entity_id, rule, written in group:
        if rule == _EXACT:
            exact.setdefault(written, {})[entity_id] = None
        else:
            (capitalised if rule == _CAPITALISED else any_case)[entity_id] = None

    # Candidates most popular first (then lowest id): without context, the first one wins.
    def ranked(ids: Iterable[int]) -> _Ids:
        return tuple(sorted(ids, key=rank.__getitem__))

    when_lower = ranked(any_case)
    when_upper = ranked([*any_case, *(e for e in capitalised if e not in any_case)])
    spelled = {w: ranked(ids) for w, ids in exact.items()} if exact else None
    return len(key), first, when_upper, when_lower, spelled


class Linker:
    """Links catalogue entities in article text; see the module docstring for the rules."""

    __slots__ = ("_automaton", "_keys", "_rank", "size")

    def __init__(self, automaton: Any, keys: list[_Key], rank: dict[int, int]) -> None:
        self._automaton = automaton
        self._keys = keys
        self._rank = rank
        self.size = 0
        """How many surfaces (distinct entity and spelling) the linker matches."""

    @classmethod
    def build(cls, surfaces: Iterable[Surface]) -> Linker:
        """A linker for `surfaces` (seconds for a million: build it off the event loop)."""
        # Millions of new objects would set off full garbage collections that each walk all
        # of them while holding the GIL; nothing built here is cyclic.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return cls._build(surfaces)
        finally:
            if collecting:
                gc.enable()

    @classmethod
    def _build(cls, surfaces: Iterable[Surface]) -> Linker:
        groups: dict[str, _Entry | list[_Entry]] = {}
        popularity: dict[int, int] = {}
        for surface in surfaces:
            found = _rule(surface.text)
            if found is None:
                continue
            key, rule, written = found
            entry = (surface.entity_id, rule, written)
            known = groups.get(key)
            if known is None:
                groups[key] = entry
            elif isinstance(known, list):
                known.append(entry)
            elif known != entry:
                groups[key] = [known, entry]
            if surface.popularity > popularity.get(surface.entity_id, -1):
                popularity[surface.entity_id] = surface.popularity
        # An entity's rank: its place by popularity (descending), then id.
        order = sorted(popularity, key=lambda e: (-popularity[e], e))
        rank = {entity_id: place for place, entity_id in enumerate(order)}
        del order
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        keys: list[_Key] = []
        size = 0
        for index, (key, group) in enumerate(groups.items()):
            automaton.add_word(f" {key} ", index)
            if isinstance(group, list):
                group = list(dict.fromkeys(group))
                size += len(group)
            else:
                size += 1
            keys.append(_record(key, group, rank))
        if keys:
            automaton.make_automaton()
        linker = cls(automaton if keys else None, keys, rank)
        linker.size = size
        return linker

    def link(self, title: str, summary: str | None, body: str | None) -> list[Mention]:
        """The entities mentioned in an article, most salient first."""
        if self._automaton is None:
            return []
        title, summary, body = _nfc(title), _nfc(summary or ""), _nfc(body or "")
        text = f" {title} {_SEPARATOR} {summary} {_SEPARATOR} {body} "
        hits = self._hits(text)
        if not hits:
            return []
        chosen = self._resolve(hits)

        # Offsets in `text`: the title starts at 1, the summary and the body after a separator.
        # Hits are in text order, so each part's hits are a slice of them.
        summary_at = len(title) + 4
        body_at = summary_at + len(summary) + 3
        lead_end = body_at if summary.strip() else body_at + _LEAD_CHARS
        starts = [hit[0] for hit in hits]
        title_end = bisect_left(starts, summary_at)
        in_title = set(chosen[:title_end])
        in_lead = set(chosen[title_end : bisect_left(starts, lead_end)])
        body_start = bisect_left(starts, body_at)
        # Reversed, so that each entity keeps its first offset in the body.
        first_in_body = dict(
            zip(reversed(chosen[body_start:]), reversed(starts[body_start:]), strict=True)
        )
        # _POSITION_WEIGHT × (1 − body offset / body length), for an offset in `text`.
        per_char = _POSITION_WEIGHT / max(len(body), 1)
        position_at_zero = _POSITION_WEIGHT + body_at * per_char
        ranked = []
        for entity_id, count in Counter(chosen).items():
            score = _FREQUENCY[min(count, _FREQUENCY_CAP)]
            if entity_id in in_title:
                score += _TITLE_WEIGHT
            if entity_id in in_lead:
                score += _LEAD_WEIGHT
            offset = first_in_body.get(entity_id)
            if offset is not None:
                score += position_at_zero - offset * per_char
            # Salience in thousandths: at least 50 (one mention), at most 1000.
            ranked.append((-int(score * 1000 + 0.5), -count, entity_id))
        ranked.sort()
        return [Mention(entity_id, -milli / 1000, -count) for milli, count, entity_id in ranked]

    def _hits(self, text: str) -> list[_Hit]:
        """Accepted, non-overlapping matches in `text` (leftmost, then longest, wins)."""
        keys = self._keys
        rank = self._rank.__getitem__
        selected: list[_Hit] = []
        # Matches arrive in order of their end; one that overlaps already selected matches
        # replaces them only if it starts before them all (or with the first, but is longer).
        # A match dropped here can never be needed again: whatever ends later and beats its
        # rival covers it too.
        for end, key in self._automaton.iter(fold(text)):
            length, first, when_upper, when_lower, exact = keys[key]
            start = end - length
            ids = when_upper if text[start + first].isupper() else when_lower
            if exact is not None:
                spelled = exact.get(text[start:end])
                if spelled:
                    ids = spelled if not ids else tuple(sorted({*ids, *spelled}, key=rank))
            if not ids:
                continue
            if selected and selected[-1][1] > start:
                i = len(selected) - 1
                while i > 0 and selected[i - 1][1] > start:
                    i -= 1
                rival = selected[i]
                if rival[0] < start or (rival[0] == start and rival[1] >= end):
                    continue
                del selected[i:]
            selected.append((start, end, key, ids))
        return selected

    def _resolve(self, hits: list[_Hit]) -> list[int]:
        """The entity each hit links to (see "Ambiguity" in the module docstring)."""
        if all(len(hit[3]) == 1 for hit in hits):
            return [hit[3][0] for hit in hits]
        # How many distinct surfaces found in the document each candidate has, where that is
        # more than the hit's own surface (all that can change a decision). Common names have
        # dozens of candidates, so repeats are found with set operations first.
        surfaces = list({hit[2]: hit[3] for hit in hits}.values())
        seen: set[int] = set()
        repeated: set[int] = set()
        for ids in surfaces:  # set operations run in C, and few candidates repeat
            repeated.update(seen.intersection(ids))
            seen.update(ids)
        context = {e: sum(e in ids for ids in surfaces) for e in repeated}
        rank = self._rank
        decided: dict[_Ids, int] = {}
        chosen = []
        for hit in hits:
            ids = hit[3]
            if len(ids) == 1:
                chosen.append(ids[0])
                continue
            if ids not in decided:
                # Most context wins, then popularity: ids are ranked (most popular first), so
                # the first wins when no candidate has context.
                supported = [e for e in context if e in ids] if context else None
                decided[ids] = (
                    min(supported, key=lambda e: (-context[e], rank[e])) if supported else ids[0]
                )
            chosen.append(decided[ids])
        return chosen
