"""Pure normalisation of incoming article data: URLs, dates, slugs, content hashes.

No IO here. The same `canonicalize_url` serves ingest (the dedupe key) and lookups
(`article(url:)`), so a partner's link finds the stored article whatever tracking
parameters it carries.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, date, datetime, time
from typing import Final
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from service.errors import BadInput

__all__ = ["canonicalize_url", "content_hash", "parse_published_at", "slugify"]

DEFAULT_PORTS: Final = {"http": 80, "https": 443}
TRACKING_PARAMS: Final = frozenset(
    {"fbclid", "gclid", "dclid", "msclkid", "yclid", "igshid", "mc_cid", "mc_eid", "_ga",
     "ocid", "cmp", "cmpid", "ref_src", "ref_url", "smid", "sr_share", "at_medium", "at_campaign"}
)  # fmt: skip
TRACKING_PREFIXES: Final = ("utm_", "at_", "pk_", "mtm_")
MAX_URL_LENGTH: Final = 2048
_PATH_SAFE: Final = "/:@!$&'()*+,;=-._~%"


def canonicalize_url(url: str) -> str:
    """The canonical form of an article URL; raises BadInput if it is not an http(s) URL."""
    text = url.strip()
    if len(text) > MAX_URL_LENGTH:
        raise BadInput(f"URL is longer than {MAX_URL_LENGTH} characters")
    try:
        canonical = _canonical(text)
    except ValueError as exc:  # urllib's own complaints, and UnicodeError (a subclass)
        raise BadInput(f"not a valid URL: {exc}") from None
    # Escaping can lengthen a URL (é is %C3%A9): the canonical form must fit the limit too,
    # or it would not canonicalise again.
    if len(canonical) > MAX_URL_LENGTH:
        raise BadInput(f"URL is longer than {MAX_URL_LENGTH} characters once escaped")
    return canonical


def _canonical(text: str) -> str:
    parts = urlsplit(text)
    if "\\" in parts.netloc:
        # Browsers read `\` as `/`: "https://a.example\@b.example/" is a page of a.example,
        # while urllib finds the host b.example. Refused rather than guessed.
        raise BadInput("not a valid URL: a backslash in the host part")
    if "@" in parts.netloc:
        raise BadInput("URL must not contain a user name or password")
    port = parts.port
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").rstrip(".")
    if scheme not in DEFAULT_PORTS or not host:
        raise BadInput("not an absolute http(s) URL")
    if ":" in host:  # IPv6 literals keep their brackets
        host = f"[{host}]"
    netloc = host if port in (None, DEFAULT_PORTS[scheme]) else f"{host}:{port}"
    # Characters a browser would escape are escaped (once), so a URL and its canonical form
    # canonicalise alike.
    path = quote(re.sub(r"/{2,}", "/", parts.path or "/"), safe=_PATH_SAFE)
    if len(path) > 1:
        path = path.rstrip("/") or "/"
    query = [
        (key, value)
        for key, value in parse_qsl(parts.query, keep_blank_values=True)
        if key.lower() not in TRACKING_PARAMS and not key.lower().startswith(TRACKING_PREFIXES)
    ]
    return urlunsplit((scheme, netloc, path, urlencode(sorted(query)), ""))


def parse_published_at(value: str) -> datetime:
    """An RFC 3339 date-time with an offset, or a date alone (00:00 UTC); always UTC."""
    text = value.strip()
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        try:
            return datetime.combine(date.fromisoformat(text), time(), tzinfo=UTC)
        except ValueError:
            raise BadInput("not a valid calendar date") from None
    if not re.fullmatch(
        r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?([Zz]|[+-]\d{2}:\d{2})", text
    ):
        raise BadInput("not an RFC 3339 date-time with a time-zone offset")
    try:
        return datetime.fromisoformat(text.replace("z", "Z")).astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadInput("not an RFC 3339 date-time with a time-zone offset") from None


_SLUG_FOLD: Final = str.maketrans(
    {"ø": "o", "Ø": "o", "æ": "ae", "Æ": "ae", "ß": "ss", "đ": "d", "ł": "l", "Ł": "l"}
)


def slugify(name: str) -> str:
    """A URL-safe identifier: lower-case ASCII words joined by hyphens."""
    folded = unicodedata.normalize("NFKD", name.translate(_SLUG_FOLD).lower())
    letters = "".join(c for c in folded if not unicodedata.combining(c))
    slug = re.sub(r"[^a-z0-9]+", "-", letters).strip("-")
    # Names in other scripts keep distinct slugs through a digest of the name.
    return slug or "entity-" + hashlib.sha256(name.encode()).hexdigest()[:10]


def content_hash(*parts: object) -> bytes:
    """A stable digest of an article's content, to tell UPDATED from UNCHANGED."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(repr(part).encode())
        digest.update(b"\x1f")
    return digest.digest()
