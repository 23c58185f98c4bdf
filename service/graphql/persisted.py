"""Persisted queries: trusted documents by sha256, and Apollo's automatic persisted queries.

Trusted documents are the operations in `schema/operations/*.graphql`; each is addressed by
the sha256 (hex) of its exact file text. A client sends

    {"extensions": {"persistedQuery": {"version": 1, "sha256Hash": "<hex>"}}, "variables": …}

(over POST, or GET as `?extensions=…&variables=…`, which HTTP caches can keep) instead of
the query text. Apollo's APQ protocol works on top: an unknown hash without a query is
answered with the error `PERSISTED_QUERY_NOT_FOUND`; the client then sends the hash and the
query together, the hash is checked (`BAD_INPUT` when it does not match) and the document is
remembered in a bounded in-process LRU (`NEWSGRAPH_APQ_CACHE_SIZE`, default 1,000; each
replica learns on its own, which the protocol tolerates: a miss costs one round trip).

With `NEWSGRAPH_TRUSTED_DOCUMENTS_ONLY=true` only trusted documents run (by hash, or by
their exact text): anything else is refused with `PERSISTED_QUERY_NOT_ALLOWED`, and APQ
registers nothing.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from strawberry.extensions import SchemaExtension

from service.config import Settings
from service.graphql.limits import limit_error, reject
from service.resources import operations_dir

__all__ = [
    "DocumentStore",
    "PersistedQueries",
    "TrustedDocument",
    "load_trusted_documents",
    "persisted_extensions",
    "sha256_hex",
]

NOT_FOUND: Final = "PERSISTED_QUERY_NOT_FOUND"
NOT_ALLOWED: Final = "PERSISTED_QUERY_NOT_ALLOWED"
_HASH_RE: Final = re.compile(r"[0-9a-f]{64}")
_NAME_RE: Final = re.compile(r"[_A-Za-z][_0-9A-Za-z]*")


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class TrustedDocument:
    name: str  # the file's stem, e.g. feed
    sha256: str
    text: str


def load_trusted_documents(folder: Path | None = None) -> dict[str, TrustedDocument]:
    """The trusted documents by sha256 of their exact text (UTF-8 bytes of the file)."""
    documents = {}
    for path in sorted((folder or operations_dir()).glob("*.graphql")):
        raw = path.read_bytes()
        text = raw.decode()
        digest = hashlib.sha256(raw).hexdigest()
        documents[digest] = TrustedDocument(path.stem, digest, text)
    return documents


class DocumentStore:
    """Trusted documents plus the APQ documents registered since start (an LRU)."""

    def __init__(self, trusted: Mapping[str, TrustedDocument], *, apq_size: int) -> None:
        self.trusted = dict(trusted)
        self.apq_size = apq_size
        self._apq: OrderedDict[str, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: str) -> str | None:
        if (document := self.trusted.get(digest)) is not None:
            return document.text
        with self._lock:
            text = self._apq.get(digest)
            if text is not None:
                self._apq.move_to_end(digest)
            return text

    def register(self, digest: str, text: str) -> None:
        if self.apq_size <= 0 or digest in self.trusted:
            return
        with self._lock:
            self._apq[digest] = text
            self._apq.move_to_end(digest)
            while len(self._apq) > self.apq_size:
                self._apq.popitem(last=False)

    def is_trusted(self, digest: str) -> bool:
        return digest in self.trusted


def _placeholder(operation_name: str | None) -> str:
    # A rejected request still goes through parsing (strawberry parses whatever `query` is):
    # a trivial document named like the requested operation, so that name resolves.
    if operation_name and _NAME_RE.fullmatch(operation_name):
        return f"query {operation_name} {{ __typename }}"
    return "{ __typename }"


class PersistedQueries(SchemaExtension):
    """Resolve `extensions.persistedQuery` to a document before parsing; enforce trusted-only."""

    def __init__(self, store: DocumentStore, *, trusted_only: bool) -> None:
        self.store = store
        self.trusted_only = trusted_only

    def _refuse(self, code: str, message: str) -> None:
        context = self.execution_context
        context.query = _placeholder(context.operation_name)
        reject(context, limit_error(message, code=code))

    def on_operation(self) -> Iterator[None]:
        self._resolve()
        yield

    def _resolve(self) -> None:
        context = self.execution_context
        persisted = (context.operation_extensions or {}).get("persistedQuery")
        query = context.query
        if persisted is None:
            trusted = query is None or self.store.is_trusted(sha256_hex(query))
            if self.trusted_only and not trusted:
                self._refuse(
                    NOT_ALLOWED,
                    "Only trusted documents are accepted here "
                    "(NEWSGRAPH_TRUSTED_DOCUMENTS_ONLY): send the sha256 of one in "
                    "extensions.persistedQuery.",
                )
            return
        digest = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        version = persisted.get("version") if isinstance(persisted, dict) else None
        if version != 1 or not isinstance(digest, str) or not _HASH_RE.fullmatch(digest.lower()):
            self._refuse(
                "BAD_INPUT",
                "extensions.persistedQuery must be {version: 1, sha256Hash: <64 hex digits>}.",
            )
            return
        digest = digest.lower()
        if query is None:
            text = self.store.get(digest)
            if text is None or (self.trusted_only and not self.store.is_trusted(digest)):
                if self.trusted_only:
                    self._refuse(NOT_ALLOWED, f"No trusted document has the sha256 {digest}.")
                else:
                    self._refuse(NOT_FOUND, "PersistedQueryNotFound")
                return
            context.query = text
            return
        if sha256_hex(query) != digest:
            self._refuse("BAD_INPUT", "The sha256Hash does not match the query's sha256.")
            return
        if self.trusted_only and not self.store.is_trusted(digest):
            self._refuse(
                NOT_ALLOWED,
                "Only trusted documents are accepted here (NEWSGRAPH_TRUSTED_DOCUMENTS_ONLY).",
            )
            return
        self.store.register(digest, query)


def persisted_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    """The factory for the schema's `extensions`, with one store for the process."""
    store = DocumentStore(load_trusted_documents(), apq_size=settings.apq_cache_size)
    trusted_only = settings.trusted_documents_only
    return [lambda: PersistedQueries(store, trusted_only=trusted_only)]
