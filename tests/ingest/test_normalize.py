from __future__ import annotations

from datetime import UTC, datetime

import pytest

from service.errors import BadInput
from service.ingest.normalize import canonicalize_url, content_hash, parse_published_at, slugify


@pytest.mark.parametrize(
    ("url", "canonical"),
    [
        ("HTTPS://WWW.BBC.co.uk/News/A?utm_source=x&utm_medium=y", "https://www.bbc.co.uk/News/A"),
        ("https://nrk.no:443/urix/sak/#comments", "https://nrk.no/urix/sak"),
        ("http://example.com:80/a//b/", "http://example.com/a/b"),
        ("https://example.com:8443/a", "https://example.com:8443/a"),
        ("https://example.com/?b=2&a=1&fbclid=z", "https://example.com/?a=1&b=2"),
        ("https://example.com", "https://example.com/"),
        ("  https://example.com/x?gclid=1  ", "https://example.com/x"),
    ],
)
def test_canonical_urls_drop_what_does_not_name_the_page(url: str, canonical: str) -> None:
    assert canonicalize_url(url) == canonical


@pytest.mark.parametrize(
    "url", ["notaurl", "ftp://example.com/x", "https://", "https://x.com:99999/"]
)
def test_non_http_urls_are_bad_input(url: str) -> None:
    with pytest.raises(BadInput):
        canonicalize_url(url)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        # urllib reads the host as evil.example; a browser opens a page of news.example.
        ("https://news.example\\@evil.example/story", "backslash"),
        ("https://news.example\\.evil.example/story", "backslash"),
        ("https://user:secret@news.example/story", "user name or password"),
        ("https://news.example@evil.example/story", "user name or password"),
    ],
)
def test_urls_whose_host_is_ambiguous_or_carries_credentials_are_bad_input(
    url: str, reason: str
) -> None:
    with pytest.raises(BadInput, match=reason):
        canonicalize_url(url)


def test_overlong_urls_are_bad_input() -> None:
    with pytest.raises(BadInput, match="longer than"):
        canonicalize_url("https://example.com/" + "a" * 3000)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-01T12:30:00Z", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01T14:30:00+02:00", datetime(2024, 3, 1, 12, 30, tzinfo=UTC)),
        ("2024-03-01T12:30:00.250z", datetime(2024, 3, 1, 12, 30, 0, 250000, tzinfo=UTC)),
        ("2024-03-01", datetime(2024, 3, 1, tzinfo=UTC)),
    ],
)
def test_dates_are_rfc3339_and_come_out_in_utc(text: str, expected: datetime) -> None:
    assert parse_published_at(text) == expected


@pytest.mark.parametrize(
    "text", ["2024-03-01T12:30:00", "yesterday", "2024-02-30", "2024-13-01T00:00:00Z", "1709290000"]
)
def test_dates_without_offset_or_invalid_are_bad_input(text: str) -> None:
    with pytest.raises(BadInput):
        parse_published_at(text)


def test_slugs_are_ascii_words() -> None:
    assert slugify("Jonas Gahr Støre") == "jonas-gahr-store"
    assert slugify("Emmanuel Macron") == "emmanuel-macron"
    assert slugify("Ærlig Åse") == "aerlig-ase"
    assert slugify("Israel–Hamas war") == "israel-hamas-war"
    assert slugify("Владимир Путин").startswith("entity-")
    assert slugify("Владимир Путин") != slugify("Си Цзиньпин")


def test_content_hash_changes_with_content() -> None:
    assert content_hash("a", None) == content_hash("a", None)
    assert content_hash("a", None) != content_hash("a", "b")
