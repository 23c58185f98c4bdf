"""Property-based tests of the ingest normalisers: canonicalize_url and plain_text.

Each property runs up to 200 generated examples, with no deadline (a slow first call must not
fail the suite) and no example database (nothing written into the work tree).
"""

from __future__ import annotations

import string
import unicodedata
from urllib.parse import parse_qsl, urlsplit

from hypothesis import example, given, settings
from hypothesis import strategies as st

from service.errors import BadInput
from service.ingest.normalize import TRACKING_PARAMS, TRACKING_PREFIXES, canonicalize_url
from service.ingest.text import BODY_MAX, plain_text

PROPERTY = settings(max_examples=200, deadline=None, database=None)

# Text that JSON can carry; lone surrogates are mixed in where they are meant to be.
any_text = st.text(st.characters(exclude_categories=["Cs"]))
with_surrogates = st.builds(
    lambda a, s, b: a + s + b,
    any_text,
    st.characters(categories=["Cs"]),
    any_text,
)


def _mixed_case(text: str, flips: list[bool]) -> str:
    return "".join(c.upper() if i < len(flips) and flips[i] else c for i, c in enumerate(text))


label = st.text(string.ascii_letters + string.digits + "-æøåÆØÅ", min_size=1, max_size=12)
domain = st.builds(
    lambda labels, dot: ".".join(labels) + dot,
    st.lists(label, min_size=1, max_size=4),
    st.sampled_from(["", "."]),
)
host = st.one_of(
    domain,
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda address: f"[{address}]"),
)
tracking_key = st.builds(
    _mixed_case,
    st.one_of(
        st.sampled_from(sorted(TRACKING_PARAMS)),
        st.builds(lambda p, s: p + s, st.sampled_from(TRACKING_PREFIXES), any_text),
    ),
    st.lists(st.booleans()),
)
query_key = st.one_of(tracking_key, any_text)
query = st.lists(st.tuples(query_key, any_text), max_size=6).map(
    lambda pairs: "&".join(f"{k}={v}" for k, v in pairs)
)


segment = st.one_of(
    any_text.map(lambda t: t.replace("?", "").replace("#", "")),
    st.builds(lambda t, space: t + space, any_text, st.sampled_from([" ", "\x0c", "\u3000"])),
)


@st.composite
def http_urls(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(["http", "https", "HTTP", "Https", "hTTps"]))
    userinfo = draw(st.sampled_from(["", "user@", "user:secret@"]))
    port = draw(st.one_of(st.just(""), st.integers(0, 65535).map(lambda p: f":{p}")))
    path = "/".join(draw(st.lists(segment, max_size=5)))
    url = f"{scheme}://{userinfo}{draw(host)}{port}/{path}"
    if draw(st.booleans()):
        url += "?" + draw(query)
    if draw(st.booleans()):
        url += "#" + draw(any_text)
    return url


def _canonical_or_none(url: str) -> str | None:
    try:
        return canonicalize_url(url)
    except BadInput:
        return None


@PROPERTY
@given(http_urls())
@example("HTTPS://WWW.BBC.co.uk/News/A?utm_source=x&utm_medium=y")
@example("https://example.com/?a=%zz&b=+&=x&&c")
@example("https://example.com/a #top")  # whitespace ending the path
@example("http://[::1]:8080/a")
@example("http://example.com/" + "é" * 1000)  # escaping makes it longer than the limit
def test_canonical_urls_are_canonical(url: str) -> None:
    canonical = _canonical_or_none(url)
    if canonical is not None:
        assert canonicalize_url(canonical) == canonical


@PROPERTY
@given(http_urls())
@example("https://example.com/?UTM_Source=a&Fbclid=b&utm%5Fmedium=c&pk_campaign=d&x=1")
def test_tracking_parameters_never_survive(url: str) -> None:
    canonical = _canonical_or_none(url)
    if canonical is None:
        return
    for key, _ in parse_qsl(urlsplit(canonical).query, keep_blank_values=True):
        assert key.lower() not in TRACKING_PARAMS
        assert not key.lower().startswith(TRACKING_PREFIXES)


@PROPERTY
@given(http_urls())
def test_canonical_urls_are_http_with_a_lower_case_host(url: str) -> None:
    canonical = _canonical_or_none(url)
    if canonical is None:
        return
    parts = urlsplit(canonical)
    assert parts.scheme in ("http", "https")
    assert parts.hostname
    assert parts.netloc == parts.netloc.lower()
    assert "@" not in parts.netloc
    assert not parts.fragment


@PROPERTY
@given(
    st.one_of(
        any_text,
        any_text.map(lambda t: "https://" + t),
        http_urls(),
        # Lone surrogates: orjson refuses them, but stdlib-JSON request bodies carry them.
        with_surrogates.map(lambda t: "https://example.com/" + t),
        with_surrogates.map(lambda t: "https://example.com/?a=" + t),
    )
)
@example("https://example.com/?a=\ud800")
def test_canonicalize_url_raises_only_bad_input(text: str) -> None:
    _canonical_or_none(text)


# plain_text -------------------------------------------------------------------------------

markup = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<br>",
                "<div class='x'>",
                "</div>",
                "<b>",
                "</b>",
                "<li>",
                "<table><tr><td>",
                "</td>",
                "<script>",
                "</script>",
                "<style>",
                "</style>",
                "<template>",
                "<iframe>",
                "</iframe>",
                "<svg>",
                "</svg>",
                "<!--",
                "-->",
                "<![CDATA[",
                "]]>",
                "</",
                ">",
                "=",
                "'",
                '"',
                "\n",
                "\t",
                " ",
                "\x00",
                "\x85",
                "\u2028",
                "\u2029",
                "\ufdd0",
                "\ufdd1",
                "e\u0301",
                "\u200b",
                "\ufeff",
                "&amp;",
                "&#0;",
                "&#1;",
                "&#x85;",
                "&#xD800;",
                "&#xFDD0;",
                "&nbsp;",
                "&lt;",
            ]
        ),
        any_text,
    ),
    max_size=30,
).map("".join)

# Script content the tests look for in the output: the generator writes it nowhere else, and
# every "<" it writes starts a complete tag (in "<scr<script>SECRET" the secret is text).
SECRET = "SECRETSCRIPT"
scripted_markup = st.lists(
    st.one_of(
        st.sampled_from(
            [
                "<p>",
                "</p>",
                "<div>",
                "</div>",
                "<b>",
                "</b>",
                "<br>",
                "<table><td>",
                f"<script>{SECRET}</script>",
                f"<SCRIPT type=module>{SECRET}",
                "</script>",
                f"<style>{SECRET}</style>",
                f"<noscript>{SECRET}</noscript>",
                f"<iframe>{SECRET}</iframe>",
                f"<template>{SECRET}</template>",
                "<!-- <script> -->",
                "script",
                ">",
            ]
        ),
        st.text(string.ascii_letters + " .,\n"),
    ),
    max_size=25,
).map("".join)


def _plain_text_or_none(value: str, *, paragraphs: bool, max_chars: int) -> str | None:
    try:
        return plain_text(value, max_chars=max_chars, keep_paragraphs=paragraphs)
    except BadInput:
        return None


def _assert_clean(text: str, *, paragraphs: bool) -> None:
    allowed = {"\n"} if paragraphs else set()
    for char in text:
        category = unicodedata.category(char)
        assert category not in ("Cc", "Cs") or char in allowed, repr(char)
        assert not 0xFDD0 <= ord(char) <= 0xFDEF, repr(char)
        assert ord(char) & 0xFFFE != 0xFFFE, repr(char)
    assert "\ufeff" not in text
    assert "\t" not in text
    assert "\n\n\n" not in text
    assert text == text.strip()
    assert unicodedata.is_normalized("NFC", text)


@PROPERTY
@given(
    st.one_of(any_text, with_surrogates, markup),
    st.booleans(),
    st.integers(min_value=1, max_value=200),
)
def test_plain_text_raises_only_bad_input_and_returns_clean_text(
    value: str, paragraphs: bool, max_chars: int
) -> None:
    text = _plain_text_or_none(value, paragraphs=paragraphs, max_chars=max_chars)
    if text is not None:
        assert len(text) <= max_chars
        _assert_clean(text, paragraphs=paragraphs)


@PROPERTY
@given(scripted_markup, st.booleans())
@example("<scr<script>ipt>alert(1)</script>", False)
@example("<p>a<script>SECRETSCRIPT", True)
def test_no_script_survives(value: str, paragraphs: bool) -> None:
    text = plain_text(value, max_chars=BODY_MAX, keep_paragraphs=paragraphs)
    assert SECRET not in text
    assert "<script" not in text.lower()
    _assert_clean(text, paragraphs=paragraphs)


@PROPERTY
@given(any_text.map(lambda t: t.replace("<", "").replace("&", "")), st.booleans())
@example("  a\t\tb \r\n\n\n c\u2028d\u00a0e ", True)
def test_plain_text_is_idempotent_on_plain_text(value: str, paragraphs: bool) -> None:
    once = plain_text(value, max_chars=BODY_MAX, keep_paragraphs=paragraphs)
    assert plain_text(once, max_chars=BODY_MAX, keep_paragraphs=paragraphs) == once
