"""The ingest pipeline that every face uses: validate → normalise → dedupe → link → upsert.

One call handles one batch in one transaction, so a result is only ever reported for an item
whose batch has committed. Items are validated one by one: an invalid item is REJECTED with
its reasons and never touches the database. If the database still refuses the batch (a value
it will not store), the batch is retried item by item, so only the culprit is rejected and no
item is ever half-written. Rows are written in key order (domains, URLs, slugs), so
concurrent batches that overlap lock rows in the same order and cannot deadlock; a deadlock
or serialisation failure is retried anyway.

Related stories are not indexed here: the batch's new and changed articles are queued in its
transaction (one statement), and `service.related.indexer` indexes them after commit, within
seconds (eventually consistent; see the README).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Final
from urllib.parse import urlsplit

import asyncpg

from service.auth import Principal, domain_allowed
from service.db.pool import Database, Writer
from service.db.related_queue import enqueue
from service.db.takedowns import find_removed_urls
from service.db.writes import (
    ArticleRow,
    EntityRef,
    EntityRow,
    LinkRow,
    SourceRow,
    UpsertOutcome,
    article_owners,
    known_canonical_urls,
    live_entities,
    merge_entities,
    record_urls,
    replace_links,
    resolve_entities,
    upsert_articles,
    upsert_entities,
    upsert_sources,
)
from service.errors import BadInput
from service.ingest.language import SAMPLE_CHARS, detect_language
from service.ingest.linking import Linker, Mention
from service.ingest.normalize import canonicalize_url, content_hash, parse_published_at, slugify
from service.ingest.ordering import WriteTurn
from service.ingest.text import BODY_MAX, SUMMARY_MAX, TITLE_MAX, plain_text
from service.metrics import count_ingest
from service.related.lists import note_ingest

__all__ = [
    "ENTITY_KINDS",
    "ItemError",
    "ItemResult",
    "ingest_batch",
    "load_catalogue",
    "merge_catalogue_entities",
]

log = logging.getLogger("newsgraph.ingest")

ENTITY_KINDS: Final = frozenset({"PERSON", "ORGANIZATION", "PLACE", "EVENT", "PRODUCT", "OTHER"})
MAX_FUTURE: Final = timedelta(days=1)
EARLIEST: Final = datetime(1900, 1, 1, tzinfo=UTC)
MAX_LIST_ITEMS: Final = 100
MAX_SHORT_TEXT: Final = 500
RETRIES: Final = 3
# SQLSTATE classes that mean "try the same transaction again".
_RETRYABLE: Final = (
    asyncpg.exceptions.DeadlockDetectedError,
    asyncpg.exceptions.SerializationError,
)


@dataclass(frozen=True, slots=True)
class ItemError:
    path: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class ItemResult:
    index: int
    status: str  # CREATED | UPDATED | UNCHANGED | REJECTED
    article_id: int | None = None
    errors: tuple[ItemError, ...] = ()


@dataclass(slots=True)
class _Draft:
    index: int
    source: SourceRow
    row: ArticleRow  # source_id is filled in once the source exists
    urls: tuple[str, ...]
    text: tuple[str, str | None, str | None]  # title, summary, body, for entity linking
    entities: list[tuple[EntityRef, float]] = field(default_factory=list)
    mentions: list[Mention] = field(default_factory=list)  # found in the text by the linker


class _Problems:
    def __init__(self, index: int) -> None:
        self.prefix = f"articles[{index}]"
        self.errors: list[ItemError] = []

    def add(self, name: str, message: str, code: str = "BAD_INPUT") -> None:
        path = f"{self.prefix}.{name}" if name else self.prefix
        self.errors.append(ItemError(path, code, message))

    def nested(self, name: str) -> _Problems:
        """Problems of a nested object (paths like articles[2].source.domain), shared."""
        child = _Problems(0)
        child.prefix = f"{self.prefix}.{name}"
        child.errors = self.errors
        return child


def _string(
    item: Mapping[str, object], key: str, problems: _Problems, *, required: bool = False,
    max_chars: int = MAX_SHORT_TEXT, paragraphs: bool = False,
) -> str | None:  # fmt: skip
    """A text field as plain text (HTML reduced), None when absent; problems noted."""
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.add(key, "is required")
        return None
    if not isinstance(value, str):
        problems.add(key, "must be a string")
        return None
    try:
        text = plain_text(value, max_chars=max_chars, keep_paragraphs=paragraphs)
    except BadInput as exc:
        too_big = "longer than" in exc.message or "more than" in exc.message
        problems.add(key, exc.message, "LIMIT_EXCEEDED" if too_big else "BAD_INPUT")
        return None
    if not text and required:
        problems.add(key, "is required (it is empty once reduced to plain text)")
    return text or None


def _strings(item: Mapping[str, object], key: str, problems: _Problems) -> tuple[str, ...]:
    value = item.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(key, "must be a list of strings")
        return ()
    if len(value) > MAX_LIST_ITEMS:
        problems.add(key, f"has more than {MAX_LIST_ITEMS} items", "LIMIT_EXCEEDED")
        return ()
    result = []
    for i, entry in enumerate(value):
        try:
            cleaned = plain_text(entry, max_chars=MAX_SHORT_TEXT)
        except BadInput as exc:
            problems.add(f"{key}[{i}]", exc.message)
            continue
        if cleaned:
            result.append(cleaned)
    return tuple(dict.fromkeys(result))


def _mapping(item: Mapping[str, object], key: str, problems: _Problems) -> Mapping[str, object]:
    value = item.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        problems.add(key, "must be an object")
        return {}
    return value


def _url(value: str | None, name: str, problems: _Problems) -> str | None:
    if value is None:
        return None
    try:
        return canonicalize_url(value)
    except BadInput as exc:
        problems.add(name, exc.message)
        return None


def _published_at(
    item: Mapping[str, object], problems: _Problems, now: datetime
) -> tuple[datetime, bool]:
    value = item.get("publishedAt")
    if value is None:
        return now, True
    if not isinstance(value, str):
        problems.add("publishedAt", "must be an RFC 3339 date-time string")
        return now, True
    try:
        moment = parse_published_at(value)
    except BadInput as exc:
        problems.add("publishedAt", exc.message)
        return now, True
    if moment > now + MAX_FUTURE:
        problems.add("publishedAt", "is more than a day in the future")
    elif moment < EARLIEST:
        problems.add("publishedAt", "is before 1900")
    return moment, False


def _image(item: Mapping[str, object], problems: _Problems) -> dict[str, object]:
    image = _mapping(item, "image", problems)
    if not image:
        return {}
    sub = problems.nested("image")
    url = _url(_string(image, "url", sub, required=True, max_chars=2048), "url", sub)
    sizes: dict[str, int | None] = {}
    for key in ("width", "height"):
        value = image.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or not 0 < value < 100_000
        ):
            sub.add(key, "must be a positive whole number of pixels")
            value = None
        sizes[key] = value
    fields: dict[str, object] = {
        "image_url": url,
        "image_credit": _string(image, "credit", sub),
        "image_caption": _string(image, "caption", sub, max_chars=2000),
        "image_alt": _string(image, "alt", sub, max_chars=2000),
        "image_width": sizes["width"],
        "image_height": sizes["height"],
    }
    return fields


def _entities(item: Mapping[str, object], problems: _Problems) -> list[tuple[EntityRef, float]]:
    raw = item.get("entities")
    if raw is None:
        return []
    if not isinstance(raw, list):
        problems.add("entities", "must be a list")
        return []
    if len(raw) > MAX_LIST_ITEMS:
        problems.add("entities", f"has more than {MAX_LIST_ITEMS} items", "LIMIT_EXCEEDED")
        return []
    found: list[tuple[EntityRef, float]] = []
    for i, entity in enumerate(raw):
        path = f"entities[{i}]"
        if not isinstance(entity, Mapping):
            problems.add(path, "must be an object")
            continue
        name = _string(entity, "name", problems.nested(path), required=True)
        kind = entity.get("kind") or "OTHER"
        if not isinstance(kind, str) or kind.upper() not in ENTITY_KINDS:
            problems.add(f"{path}.kind", f"must be one of {', '.join(sorted(ENTITY_KINDS))}")
            continue
        salience = entity.get("salience", 0.5)
        if (
            isinstance(salience, bool)
            or not isinstance(salience, int | float)
            or not 0 <= salience <= 1
        ):
            problems.add(f"{path}.salience", "must be a number from 0 to 1")
            continue
        wikidata = entity.get("wikidataId")
        if wikidata is not None and (not isinstance(wikidata, str) or not _is_qid(wikidata)):
            problems.add(f"{path}.wikidataId", "must be a Wikidata item id like Q42")
            continue
        if name is None:
            continue
        found.append((EntityRef(name, kind.upper(), slugify(name), wikidata), float(salience)))
    return found


def _is_qid(value: str) -> bool:
    return len(value) > 1 and value[0] == "Q" and value[1:].isdigit() and len(value) < 20


def prepare(index: int, item: object, now: datetime) -> _Draft | list[ItemError]:
    """Validate and normalise one input item (pure: no IO)."""
    problems = _Problems(index)
    if not isinstance(item, Mapping):
        problems.add("", "must be an object")
        return problems.errors
    url = _url(_string(item, "url", problems, required=True, max_chars=4096), "url", problems)
    partner_canonical = _url(
        _string(item, "canonicalUrl", problems, max_chars=4096), "canonicalUrl", problems
    )
    title = _string(item, "title", problems, required=True, max_chars=TITLE_MAX)
    summary = _string(item, "summary", problems, max_chars=SUMMARY_MAX)
    body = _string(item, "body", problems, max_chars=BODY_MAX, paragraphs=True)
    published_at, estimated = _published_at(item, problems, now)
    source = _mapping(item, "source", problems)
    in_source = problems.nested("source")
    domain = (_string(source, "domain", in_source) or urlsplit(url or "").hostname or "").lower()
    domain = domain.removeprefix("www.")
    country = _string(source, "country", in_source)
    if country is not None and not (len(country) == 2 and country.isascii() and country.isalpha()):
        problems.add("source.country", "must be an ISO 3166-1 alpha-2 code like NO")
    language = _string(item, "language", problems, max_chars=35)
    if language is not None and not all(
        part.isascii() and part.isalnum() for part in language.split("-")
    ):
        problems.add("language", "must be a language code like en or nb")
    authors = _strings(item, "authors", problems)
    tags = _strings(item, "tags", problems)
    section = _string(item, "section", problems)
    external_id = _string(item, "externalId", problems)
    image = _image(item, problems)
    entities = _entities(item, problems)
    if problems.errors or url is None or title is None:
        return problems.errors
    if not language:
        language = detect_language(
            " ".join(t for t in (title, summary, (body or "")[:SAMPLE_CHARS]) if t)
        )
    language = language.lower()
    canonical = partner_canonical or url
    names = sorted(ref.name for ref, _ in entities)
    dated = None if estimated else published_at
    digest = content_hash(url, title, summary, body, authors, language, section, tags, dated,
                          sorted(image.items()), names, external_id)  # fmt: skip
    return _Draft(
        index=index,
        source=SourceRow(domain=domain, name=_string(source, "name", in_source) or domain,
                         country=country.upper() if country else None),
        row=ArticleRow(
            source_id=0, url=url, canonical_url=canonical, title=title, published_at=published_at,
            published_at_estimated=estimated, content_hash=digest, summary=summary, body=body,
            authors=authors, language=language, section=section, tags=tags,
            external_id=external_id, **image,  # type: ignore[arg-type]
        ),
        urls=tuple(dict.fromkeys(u for u in (url, partner_canonical) if u)),
        text=(title, summary, body),
        entities=entities,
    )  # fmt: skip


async def ingest_batch(
    db: Database,
    items: Sequence[object],
    *,
    linker: Linker | None = None,
    writer: Principal | None = None,
    turn: WriteTurn | None = None,
) -> list[ItemResult]:
    """Validate, normalise and store `items`; one result per item, in input order.

    `turn` is the batch's place in a stream (`service.ingest.ordering`): it is prepared
    while earlier batches are written, and written once the order allows (beside the earlier
    batches in flight that share no article with it, after the others). If a batch it waits
    for fails, this one is not written (`EarlierBatchFailed`).

    `writer` is the API key writing (None: no key, as `newsgraph ingest`): its id is recorded
    on each article it writes, and a scoped (ingest) key may write only articles of its
    sources that no other key wrote last; other items are REJECTED with code FORBIDDEN.
    """
    note_ingest()  # this process's related-lists refresher steps back while it ingests
    try:
        # Validation, HTML reduction, language detection and linking are CPU work: a thread
        # keeps them off the event loop, so reads are not stalled behind a large batch.
        results, drafts = await asyncio.to_thread(_prepare_all, items, linker, writer)
        if turn is not None:
            await turn.wait_for_room()
            if turn.shares_writes:
                await turn.claim(await _claims(db, drafts))
        if drafts:
            for result in await _store(db, drafts, writer):
                results[result.index] = result
    except BaseException as exc:
        if turn is not None:
            turn.finish(exc)
        raise
    if turn is not None:
        turn.finish()
    done = [r for r in results if r is not None]
    count_ingest(r.status for r in done)
    return done


async def _claims(db: Database, drafts: Sequence[_Draft]) -> set[str]:
    """What a batch writes, for the stream's order: every URL of its items, and the canonical
    URL of each stored article they belong to (committed; what an earlier batch in flight
    records is among that batch's own URLs)."""
    urls = {u for d in drafts for u in (d.row.canonical_url, *d.urls)}
    if not urls:
        return urls
    known = await known_canonical_urls(db.primary(), sorted(urls))
    return urls | set(known.values())


def _out_of_scope(draft: _Draft, writer: Principal | None) -> ItemError | None:
    """Why a scoped key may not write this item (its source or a URL is not its own)."""
    if writer is None or not writer.is_scoped:
        return None
    allowed = writer.sources or frozenset()
    hosts = [("source.domain", draft.source.domain)] + [
        ("url", (urlsplit(u).hostname or "")) for u in draft.urls
    ]
    for path, host in hosts:
        if not domain_allowed(allowed, host):
            permitted = ", ".join(sorted(allowed)) or "none"
            return ItemError(
                f"articles[{draft.index}].{path}",
                "FORBIDDEN",
                f"this API key may write only articles of its sources ({permitted}); "
                f"{host.removeprefix('www.') or 'this'} is not one of them",
            )
    return None


def _prepare_all(
    items: Sequence[object], linker: Linker | None, writer: Principal | None = None
) -> tuple[list[ItemResult | None], list[_Draft]]:
    now = datetime.now(UTC)
    results: list[ItemResult | None] = [None] * len(items)
    drafts: list[_Draft] = []
    key_id = writer.key_id if writer is not None else None
    for index, item in enumerate(items):
        prepared = prepare(index, item, now)
        if isinstance(prepared, list):
            results[index] = ItemResult(index, "REJECTED", errors=tuple(prepared))
            continue
        if (refusal := _out_of_scope(prepared, writer)) is not None:
            results[index] = ItemResult(index, "REJECTED", errors=(refusal,))
            continue
        if key_id is not None:
            prepared.row = replace(prepared.row, ingest_key_id=key_id)
        if linker is not None:
            prepared.mentions = linker.link(*prepared.text)
        drafts.append(prepared)
    return results, drafts


async def _store(
    db: Database, drafts: list[_Draft], writer: Principal | None = None
) -> list[ItemResult]:
    try:
        return await _with_retries(db, drafts, writer)
    except asyncpg.PostgresError as exc:
        if isinstance(exc, asyncpg.exceptions.InterfaceError) or len(drafts) == 1:
            if len(drafts) == 1 and _is_data_error(exc):
                log.warning("ingest item refused by the database: %s", exc)
                message = _refusal(exc)
                return [
                    ItemResult(
                        drafts[0].index,
                        "REJECTED",
                        errors=(ItemError(f"articles[{drafts[0].index}]", "BAD_INPUT", message),),
                    )
                ]
            raise
        if not _is_data_error(exc):
            raise
    # One item poisons the batch: store each alone, so only that one is rejected.
    results = []
    for draft in drafts:
        results.extend(await _store(db, [draft], writer))
    return results


def _refusal(exc: asyncpg.PostgresError) -> str:
    if getattr(exc, "constraint_name", None) == "articles_external_id_idx":
        return "externalId is already used by another article of this source"
    return f"could not be stored ({type(exc).__name__})"


def _is_data_error(exc: asyncpg.PostgresError) -> bool:
    state = getattr(exc, "sqlstate", "") or ""
    return state.startswith(("22", "23"))  # data exception, integrity constraint violation


async def _with_retries(
    db: Database, drafts: list[_Draft], writer: Principal | None
) -> list[ItemResult]:
    for attempt in range(RETRIES):
        try:
            async with db.transaction() as w:
                return await _write(w, drafts, writer)
        except _RETRYABLE:
            if attempt == RETRIES - 1:
                raise
            await asyncio.sleep(0.05 * (attempt + 1))
    raise AssertionError("unreachable")


def _not_owner(draft: _Draft) -> ItemResult:
    return ItemResult(
        draft.index,
        "REJECTED",
        errors=(
            ItemError(
                f"articles[{draft.index}]",
                "FORBIDDEN",
                f"the article {draft.row.canonical_url} was last written with another API key; "
                "only that key or an admin may change it",
            ),
        ),
    )


async def _refuse_removed(w: Writer, drafts: list[_Draft]) -> tuple[list[_Draft], list[ItemResult]]:
    """Takedowns: an item with any URL of a removed article is REJECTED (code REMOVED)."""
    urls = [u for d in drafts for u in (d.row.canonical_url, *d.urls)]
    removed = await find_removed_urls(w, urls)
    if not removed:
        return drafts, []
    refused = []
    for draft in drafts:
        url = next((u for u in (draft.row.canonical_url, *draft.urls) if u in removed), None)
        if url is not None:
            message = f"{url} belongs to an article that was taken down; an admin must restore it"
            error = ItemError(f"articles[{draft.index}]", "REMOVED", message)
            refused.append(ItemResult(draft.index, "REJECTED", errors=(error,)))
    keep = [d for d in drafts if all(u not in removed for u in (d.row.canonical_url, *d.urls))]
    return keep, refused


async def _write(w: Writer, drafts: list[_Draft], writer: Principal | None) -> list[ItemResult]:
    drafts, refused = await _refuse_removed(w, drafts)  # taken-down URLs are refused
    if not drafts:
        return refused
    source_ids = await upsert_sources(w, sorted((d.source for d in drafts), key=lambda s: s.domain))
    # An item whose URL or canonical URL was seen before is that earlier article.
    known = await known_canonical_urls(
        w, sorted({u for d in drafts for u in (d.row.canonical_url, *d.urls)})
    )
    groups: dict[str, list[_Draft]] = {}
    for draft in drafts:
        key = known.get(draft.row.canonical_url) or next(
            (known[u] for u in draft.urls if u in known), draft.row.canonical_url
        )
        draft.row = replace(draft.row, canonical_url=key, source_id=source_ids[draft.source.domain])
        groups.setdefault(key, []).append(draft)
    # Repeats of one URL in a batch are applied in input order: the last copy is what is stored.
    keys = sorted(groups)
    results: list[ItemResult] = refused
    scoped_key = writer.key_id if writer is not None and writer.is_scoped else None
    if scoped_key is not None:
        # Articles another key wrote last are not this key's to change (rows locked till commit).
        owners = await article_owners(w, keys)
        taken = {k for k in keys if owners.get(k) not in (None, scoped_key)}
        results += [_not_owner(d) for k in sorted(taken) for d in groups[k]]
        keys = [k for k in keys if k not in taken]
    rows = [groups[k][-1].row for k in keys]
    upserted = await upsert_articles(w, rows, scoped_key=scoped_key) if rows else []
    outcomes = dict(zip(keys, upserted, strict=True))
    # Lost a race with another key creating the same article: not ours either.
    results += [_not_owner(d) for k in keys if outcomes[k].status == "FORBIDDEN" for d in groups[k]]
    keys = [k for k in keys if outcomes[k].status != "FORBIDDEN"]
    await record_urls(
        w, [(u, outcomes[k].id) for k in keys for d in groups[k] for u in (k, *d.urls)]
    )
    changed = [(groups[k][-1], outcomes[k]) for k in keys if outcomes[k].status != "UNCHANGED"]
    await _link(w, changed)
    # Related stories are indexed after commit (service.related.indexer): here the new and
    # changed articles are only queued, in this transaction (UNCHANGED ones are not).
    await enqueue(w, [outcome.id for _, outcome in changed])
    for key in keys:
        results.extend(_group_results(groups[key], outcomes[key]))
    return results


def _group_results(copies: list[_Draft], outcome: UpsertOutcome) -> list[ItemResult]:
    results = [ItemResult(copies[0].index, outcome.status, outcome.id)]
    for previous, copy in itertools.pairwise(copies):
        same = previous.row.content_hash == copy.row.content_hash
        results.append(ItemResult(copy.index, "UNCHANGED" if same else "UPDATED", outcome.id))
    return results


async def _link(w: Writer, changed: list[tuple[_Draft, UpsertOutcome]]) -> None:
    if not changed:
        return
    refs = [ref for draft, _ in changed for ref, _ in draft.entities]
    ids = iter(await resolve_entities(w, refs)) if refs else iter(())
    links: dict[tuple[int, int], LinkRow] = {}
    for draft, outcome in changed:
        found: dict[int, LinkRow] = {}
        for mention in draft.mentions:
            found[mention.entity_id] = LinkRow(
                outcome.id, mention.entity_id, mention.salience, mention.mention_count
            )
        for _, salience in draft.entities:
            entity_id = next(ids)
            seen = found.get(entity_id)
            found[entity_id] = LinkRow(
                outcome.id, entity_id, max(salience, seen.salience if seen else 0.0),
                seen.mention_count if seen else 1,
            )  # fmt: skip
        links.update({(outcome.id, e): link for e, link in found.items()})
    # The linker may predate an entity merge: its merged ids are linked as their survivor.
    live = await live_entities(w, list({e for _, e in links}))
    if any(live.get(e) != e for _, e in links):
        links = _relinked(links, live)
    ordered = [links[k] for k in sorted(links)]
    # A new article has no links to replace; an updated one's links are replaced whole.
    replaced = sorted(o.id for _, o in changed if o.status != "CREATED")
    published = {o.id: o.published_at for _, o in changed if o.published_at is not None}
    await replace_links(w, ordered, published, replaced=replaced)


def _relinked(
    links: dict[tuple[int, int], LinkRow], live: Mapping[int, int]
) -> dict[tuple[int, int], LinkRow]:
    """`links` to the live entities (`writes.live_entities`): an article's links to a merged
    entity and to its survivor become one, as a merge combines them (highest salience, all
    mentions); links to entities that are gone altogether are dropped."""
    relinked: dict[tuple[int, int], LinkRow] = {}
    for (article_id, entity_id), link in links.items():
        to = live.get(entity_id)
        if to is None:
            continue
        seen = relinked.get((article_id, to))
        relinked[(article_id, to)] = LinkRow(
            article_id,
            to,
            max(link.salience, seen.salience) if seen else link.salience,
            link.mention_count + (seen.mention_count if seen else 0),
        )
    return relinked


async def load_catalogue(db: Database, entities: Sequence[Mapping[str, object]]) -> list[int]:
    """Create or update catalogue entities from `{name, kind, wikidataId, aliases, description}`.

    Raises BadInput naming the first invalid field (`entities[3].wikidataId`); nothing is
    written then.
    """
    rows = []
    for i, entity in enumerate(entities):
        problems = _Problems(i)
        problems.prefix = f"entities[{i}]"
        name = _string(entity, "name", problems, required=True)
        kind = entity.get("kind") or "OTHER"
        if not isinstance(kind, str) or kind.upper() not in ENTITY_KINDS:
            problems.add("kind", f"must be one of {', '.join(sorted(ENTITY_KINDS))}")
            kind = "OTHER"
        wikidata = entity.get("wikidataId")
        if wikidata is not None and (not isinstance(wikidata, str) or not _is_qid(wikidata)):
            problems.add("wikidataId", "must be a Wikidata item id like Q42")
            wikidata = None
        description = _string(entity, "description", problems, max_chars=2000)
        aliases = _strings(entity, "aliases", problems)
        if problems.errors or name is None:
            error = problems.errors[0]
            raise BadInput(f"{error.path} {error.message}", field=error.path)
        rows.append(
            EntityRow(
                name=name,
                kind=kind.upper(),
                slug=slugify(name),
                wikidata_id=wikidata,
                description=description,
                aliases=aliases,
            )
        )
    async with db.transaction() as w:
        return await upsert_entities(w, rows)


async def merge_catalogue_entities(db: Database, into: int, sources: Sequence[int]) -> bool:
    """Merge `sources` into `into` (one transaction); False when an entity does not exist."""
    async with db.transaction() as w:
        return await merge_entities(w, into, sources)
