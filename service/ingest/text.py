"""Partner-supplied text made safe plain text: `plain_text(value, max_chars=…)`.

Titles, summaries and bodies arrive as plain text, as HTML, or as plain text with entities
(`Tom &amp; Jerry`). What we store and serve is plain text only (DESIGN.md, "Data
guarantees"), so that no client ever renders a partner's markup:

* A value containing `<` is parsed as HTML by selectolax's Lexbor backend. The content of
  script, style, noscript, iframe, template and similar elements (`DROPPED_ELEMENTS`) is
  dropped. Block elements end lines: paragraphs, headings, lists, tables, sections and the
  like become paragraph breaks ("\\n\\n"); `<br>`, `<div>`, `<li>`, `<dt>`/`<dd>` and table
  rows become line breaks ("\\n"); table cells a space. Entities are decoded by the parser,
  exactly as a browser decodes them. Only the body counts (a whole document's `<head>`, with
  its `<title>`, is not article text).
* A value without `<` skips the parser: only complete character references (`&amp;`,
  `&#8211;`, `&#x2013;`, `&nbsp;`) are decoded, so that `AT&T` or `Q&A&notes` stay as written.
* Then, either way: C0/C1 control characters, Unicode noncharacters, the byte-order mark, soft
  hyphens, zero-width spaces and word joiners are removed (invisible, and they break search
  and some clients); zero-width (non-)joiners and bidi marks stay, since emoji sequences and
  Persian, Arabic and Indic text need them. CR LF, CR, NEL and U+2028 are line breaks, U+2029
  a paragraph break. Every run of whitespace (tabs, no-break spaces and other Unicode spaces
  included) becomes one space. With `keep_paragraphs=True` (bodies) line breaks stay, with at
  most one blank line in a row; otherwise (titles, summaries) the text is one line. The result
  is NFC-normalised and stripped; plain text in that form comes back unchanged.

Limits: `max_chars` bounds the resulting text (BadInput "is longer than N characters"), and a
value longer than `MARKUP_ALLOWANCE` times that is rejected before any work, so a 10 MB string
costs a length check, not a parse. A lone surrogate (a `"\\ud800"` escape in JSON reaches us as
a str that is not valid Unicode) is rejected as "contains invalid Unicode".

Why selectolax (1.0.2, Lexbor backend): Lexbor is a complete WHATWG HTML5 parser in C, so
malformed markup (unclosed and misnested tags, `<` in text, broken entities, stray end tags)
parses exactly as browsers parse it, and it was the fastest robust option measured. On a
1.8 kB article fragment with a script and entities: parse and text ~34 µs with selectolax,
~68 µs with nh3 (clean to no tags, then unescape), ~35 µs with lxml; all of `plain_text` on it
takes ~75 µs, on 118 kB of markup ~5 ms, and on a plain-text title ~1.3 µs. nh3
(Ammonia/html5ever) is a sanitiser: it returns escaped HTML rather than text and loses block
boundaries (`<p>a</p><p>b</p>` -> "ab"). lxml (libxml2) builds trees its own, pre-HTML5 way
and silently returned no text at all for markup nested 255 deep. The parser runs as a
browser with scripting does, so `<noscript>` content is text that goes with its element.

One cost all HTML5 tree builders share (Lexbor and html5ever alike): nested unclosed block
elements cost time quadratic in the depth (40,000 nested `<div>`s: ~3 s in Lexbor, ~4 s in
nh3), and so does a long run of distinct formatting elements. Depth needs start tags, so a
value with more than `MAX_TAGS` start tags is rejected ("has more than N HTML tags") before
parsing: at that limit the worst inputs measured cost 30-100 ms (5,000 nested `<div>`s: ~30
ms), about what a few MB of ordinary markup costs anyway, while a long news article has a
few hundred tags.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections.abc import Iterator
from itertools import islice
from typing import Final

from selectolax.lexbor import LexborHTMLParser

from service.errors import BadInput

__all__ = [
    "BODY_MAX",
    "DROPPED_ELEMENTS",
    "MARKUP_ALLOWANCE",
    "MAX_TAGS",
    "SUMMARY_MAX",
    "TITLE_MAX",
    "plain_text",
    "remove_non_text",
]

TITLE_MAX: Final = 1_000
SUMMARY_MAX: Final = 10_000
BODY_MAX: Final = 1_000_000
MARKUP_ALLOWANCE: Final = 4  # a value may be this many times max_chars before reduction
MAX_TAGS: Final = 5_000

DROPPED_ELEMENTS: Final = frozenset(
    {"script", "style", "noscript", "iframe", "template", "object", "embed", "svg", "math",
     "canvas", "audio", "video", "select", "textarea", "title", "noembed", "noframes"}
)  # fmt: skip
_PARAGRAPH_ELEMENTS: Final = (
    "p", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "ul", "ol", "dl", "table",
    "figure", "hr", "section", "article", "aside", "header", "footer", "main", "nav",
    "address", "details", "fieldset", "form", "hgroup", "center", "listing", "menu", "dir",
    "search",
)  # fmt: skip
_LINE_ELEMENTS: Final = (
    "br", "div", "li", "tr", "dt", "dd", "figcaption", "summary", "caption", "legend",
)  # fmt: skip
_CELL_ELEMENTS: Final = ("td", "th")

# Noncharacters are for a program's internal use: two of them mark breaks while text is
# extracted (raw ones in the input are removed first; one written as a character reference
# becomes a harmless break), and none reach the output.
_PARAGRAPH: Final = "\ufdd0"
_LINE: Final = "\ufdd1"
_MARKS: Final[dict[str | None, str]] = {
    **dict.fromkeys(_PARAGRAPH_ELEMENTS, _PARAGRAPH),
    **dict.fromkeys(_LINE_ELEMENTS, _LINE),
    **dict.fromkeys(_CELL_ELEMENTS, " "),
}

# The BMP part is one fast character class; astral noncharacters (U+1FFFE, …, U+10FFFF) are
# looked for only in the rare text that has astral characters at all.
_NON_TEXT_BMP: Final = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f"  # C0, C1 but tab, LF, CR and NEL
    "\u00ad\u200b\u2060\ufeff\ufdd0-\ufdef\ufffe\uffff]"  # soft hyphen, ZWSP, WJ, BOM, nonchars
)
# The same but for the break marks, for the text the parser extracted.
_NON_TEXT_EXTRACTED: Final = re.compile(
    _NON_TEXT_BMP.pattern.replace("\ufdd0-\ufdef", "\ufdd2-\ufdef")
)
_ASTRAL: Final = re.compile("[\U00010000-\U0010ffff]")
_NON_TEXT_ASTRAL: Final = re.compile(
    "["
    + "".join(chr(plane << 16 | 0xFFFE) + chr(plane << 16 | 0xFFFF) for plane in range(1, 17))
    + "]"
)
_SURROGATE: Final = re.compile("[\ud800-\udfff]")
_ENTITY: Final = re.compile(r"&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_BLANK_LINES: Final = re.compile(r"\n{3,}")
_TAG_START: Final = re.compile(r"<[A-Za-z]")


def plain_text(value: str, *, max_chars: int, keep_paragraphs: bool = False) -> str:
    """`value` (plain text or HTML) as safe plain text of at most `max_chars` characters.

    One line unless `keep_paragraphs`, which keeps line breaks ("\\n") and paragraph breaks
    ("\\n\\n"). Raises BadInput when the value or its text is too long, has too many HTML
    tags, or is not valid Unicode.
    """
    if len(value) > max_chars * MARKUP_ALLOWANCE:
        raise BadInput(f"is longer than {max_chars} characters")
    if not value.isascii() and _SURROGATE.search(value):
        raise BadInput("contains invalid Unicode (a lone surrogate code point)")
    if "<" in value:
        text = _from_html(value, keep_paragraphs)
    else:
        text = _from_plain(value, keep_paragraphs)
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    if len(text) > max_chars:
        raise BadInput(f"is longer than {max_chars} characters")
    return text


def remove_non_text(text: str) -> str:
    """`text` without the characters that are never text (controls, noncharacters, …)."""
    if text.isascii():
        return _NON_TEXT_BMP.sub("", text)
    text = _NON_TEXT_BMP.sub("", text)
    return _NON_TEXT_ASTRAL.sub("", text) if _ASTRAL.search(text) else text


def _from_plain(value: str, keep_paragraphs: bool) -> str:
    text = remove_non_text(_ENTITY.sub(_unescape, value) if "&" in value else value)
    if not keep_paragraphs:
        return " ".join(text.split())
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.isascii():
        text = text.replace("\x85", "\n").replace("\u2028", "\n").replace("\u2029", "\n\n")
    text = "\n".join(" ".join(line.split()) for line in text.split("\n"))
    return _BLANK_LINES.sub("\n\n", text).strip()


def _unescape(match: re.Match[str]) -> str:
    return html.unescape(match.group())


def _from_html(value: str, keep_paragraphs: bool) -> str:
    if value.count("<") > MAX_TAGS and next(_tags_past(value, MAX_TAGS), None) is not None:
        raise BadInput(f"has more than {MAX_TAGS} HTML tags")
    if _PARAGRAPH in value or _LINE in value:
        value = value.replace(_PARAGRAPH, "").replace(_LINE, "")
    # Parsed as by a browser that runs scripts: <noscript> content is then one text node,
    # dropped with its element, rather than markup that may spill into the body.
    tree = LexborHTMLParser(value, scripting=True)
    body = tree.body
    if body is None:  # a <frameset> document has no text of its own
        return ""
    # One walk over the elements (a css() query per group costs several times more): marks
    # go in while every node is alive, then dropped subtrees go, innermost first.
    dropped = []
    for node in body.traverse():
        tag = node.tag
        if tag in DROPPED_ELEMENTS:
            dropped.append(node)
        elif (mark := _MARKS.get(tag)) is not None:
            node.insert_before(mark)
            node.insert_after(mark)
    for node in reversed(dropped):
        node.decompose()
    text = body.text(deep=True, separator="")
    # Character references may have produced controls or noncharacters (not the marks).
    text = _NON_TEXT_EXTRACTED.sub("", text)
    if _ASTRAL.search(text):
        text = _NON_TEXT_ASTRAL.sub("", text)
    if "\u2028" in text or "\u2029" in text:
        text = text.replace("\u2028", _LINE).replace("\u2029", _PARAGRAPH)
    if not keep_paragraphs:
        return " ".join(text.replace(_PARAGRAPH, " ").replace(_LINE, " ").split())
    paragraphs = []
    for part in " ".join(text.split()).split(_PARAGRAPH):
        paragraph = "\n".join(line for line in map(str.strip, part.split(_LINE)) if line)
        if paragraph:
            paragraphs.append(paragraph)
    return "\n\n".join(paragraphs)


def _tags_past(value: str, limit: int) -> Iterator[re.Match[str]]:
    return islice(_TAG_START.finditer(value), limit, None)
