"""API keys and who is calling: tokens, their keyed hashes, principals and role checks.

A token is `ng_` followed by 43 URL-safe characters (256 random bits). The database keeps
only HMAC-SHA-256(token) under the server secret (`NEWSGRAPH_KEY_SECRET`): a leaked table
gives nothing to replay, and a fast keyed hash suffices for random tokens (a slow password
KDF would cost every request tens of milliseconds and add nothing).

Roles are ordered: `reader` < `ingest` < `admin` (a higher role may do what a lower one
may). An `ingest` key writes only articles of its sources (domains, and their subdomains).

Who calls is a `Principal`, set for the request by the HTTP layer
(`service.rest.access.AccessMiddleware`) and read with `current_principal(settings)`.
Without a key: with `NEWSGRAPH_AUTH=off` the caller is `LOCAL` (may do everything); with
`required`, `ANONYMOUS` (may read only when `NEWSGRAPH_ANONYMOUS_READS` is on). A presented
key is always checked, whatever the mode.

Successful lookups are cached in-process for `NEWSGRAPH_KEY_CACHE_TTL` seconds (default 5),
so revoking a key takes effect within that time on every replica.
"""

from __future__ import annotations

import contextlib
import enum
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Final

from service.config import ConfigError, Settings
from service.db.api_keys import find_api_key
from service.db.pool import Database
from service.errors import Forbidden, Unauthenticated

__all__ = [
    "ANONYMOUS",
    "LOCAL",
    "TOKEN_PREFIX",
    "KeyStore",
    "Principal",
    "Role",
    "acting_as",
    "current_principal",
    "domain_allowed",
    "generate_token",
    "hash_token",
    "require",
    "server_secret",
]

log = logging.getLogger("newsgraph.auth")

TOKEN_PREFIX: Final = "ng_"  # noqa: S105 - not a secret
SHOWN_PREFIX_CHARS: Final = 10  # `ng_` and 7 random characters, shown in `apikey list`
MIN_SECRET_BYTES: Final = 32
# A fixed secret for development only: keys made with it are worthless anywhere else.
DEV_SECRET: Final = b"newsgraph-development-key-secret-not-for-production"
_TOKEN_RE: Final = re.compile(r"ng_[A-Za-z0-9_-]{43}")
KEY_CACHE_SIZE: Final = 10_000


class Role(enum.StrEnum):
    READER = "reader"
    INGEST = "ingest"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS: Final = {Role.READER: 0, Role.INGEST: 1, Role.ADMIN: 2}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is calling: a key (id, role, sources), or nobody in particular."""

    key_id: int | None
    role: Role | None  # None: anonymous, no key
    sources: frozenset[str] | None = None  # None: any source
    name: str = "anonymous"

    @property
    def is_anonymous(self) -> bool:
        return self.key_id is None

    @property
    def is_scoped(self) -> bool:
        """True when the principal may write only its own sources and articles."""
        return self.role is not Role.ADMIN and self.sources is not None


ANONYMOUS: Final = Principal(key_id=None, role=None, sources=frozenset())
LOCAL: Final = Principal(key_id=None, role=Role.ADMIN, name="local (NEWSGRAPH_AUTH=off)")


def generate_token() -> str:
    """A new random token: `ng_` + 256 bits, URL-safe base64 (43 characters)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def shown_prefix(token: str) -> str:
    return token[:SHOWN_PREFIX_CHARS]


def hash_token(secret: bytes, token: str) -> bytes:
    return hmac.new(secret, token.encode(), hashlib.sha256).digest()


_warned_dev_secret = False


def server_secret(settings: Settings) -> bytes:
    """The HMAC secret; fails fast when it is missing in production or too short anywhere."""
    global _warned_dev_secret
    if settings.key_secret is None:
        if settings.env == "production":
            raise ConfigError(
                f"NEWSGRAPH_KEY_SECRET must be set in production (at least {MIN_SECRET_BYTES} "
                "bytes, e.g. `openssl rand -base64 48`); API keys are hashed with it"
            )
        if not _warned_dev_secret:
            log.warning(
                "NEWSGRAPH_KEY_SECRET is not set: using the fixed development secret; "
                "API keys made now will not work with any other secret"
            )
            _warned_dev_secret = True
        return DEV_SECRET
    secret = settings.key_secret.encode()
    if len(secret) < MIN_SECRET_BYTES:
        raise ConfigError(
            f"NEWSGRAPH_KEY_SECRET must be at least {MIN_SECRET_BYTES} bytes, got {len(secret)}"
        )
    return secret


def domain_allowed(allowed: Iterable[str], domain: str) -> bool:
    """Whether `domain` is one of `allowed` or a subdomain of one."""
    domain = domain.lower().removeprefix("www.")
    return any(domain == d or domain.endswith("." + d) for d in allowed)


def require(principal: Principal, role: Role) -> None:
    """Raise `Unauthenticated` (no key) or `Forbidden` (a key of a lower role)."""
    if principal.role is None:
        raise Unauthenticated(
            f"This needs an API key with the {role} role: send `Authorization: Bearer <key>`."
        )
    if principal.role.rank < role.rank:
        raise Forbidden(
            f"This needs the {role} role; the API key {principal.name!r} has the "
            f"{principal.role} role."
        )


_principal: ContextVar[Principal | None] = ContextVar("newsgraph_principal", default=None)


def current_principal(settings: Settings) -> Principal:
    """The caller of the current request; without one set, as if no key was sent."""
    principal = _principal.get()
    if principal is not None:
        return principal
    return LOCAL if settings.auth == "off" else ANONYMOUS


@contextlib.contextmanager
def acting_as(principal: Principal) -> Iterator[Principal]:
    """Make `principal` the caller for the code inside (the HTTP layer, tests)."""
    token = _principal.set(principal)
    try:
        yield principal
    finally:
        _principal.reset(token)


class KeyStore:
    """Resolves bearer tokens to principals, caching successful lookups for `ttl` seconds."""

    def __init__(
        self, db: Database, secret: bytes, *, ttl: float, max_entries: int = KEY_CACHE_SIZE
    ):
        self.db = db
        self.secret = secret
        self.ttl = ttl
        self.max_entries = max_entries
        self._cache: OrderedDict[bytes, tuple[float, Principal]] = OrderedDict()

    async def authenticate(self, token: str) -> Principal:
        """The key's principal; `Unauthenticated` if the token is malformed, unknown or revoked."""
        if not _TOKEN_RE.fullmatch(token):
            raise Unauthenticated(
                "The API key is malformed: expected `Authorization: Bearer ng_…` with the key "
                "as `newsgraph apikey create` printed it."
            )
        digest = hash_token(self.secret, token)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[0] > now:
            self._cache.move_to_end(digest)
            return cached[1]
        record = await find_api_key(self.db, digest)
        if record is None:
            self._cache.pop(digest, None)
            raise Unauthenticated("The API key is not valid.")
        if record.revoked_at is not None:
            self._cache.pop(digest, None)
            raise Unauthenticated(f"The API key {record.name!r} was revoked.")
        role = Role(record.role)
        principal = Principal(
            key_id=record.id,
            role=role,
            sources=frozenset(record.sources) if role is Role.INGEST else None,
            name=record.name,
        )
        self._cache[digest] = (now + self.ttl, principal)
        self._cache.move_to_end(digest)
        while len(self._cache) > self.max_entries:
            self._cache.popitem(last=False)
        return principal

    def clear(self) -> None:
        self._cache.clear()
