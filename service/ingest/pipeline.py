"""The ingest pipeline: validate and normalise each item, collapse repeats, then upsert.

One batch is one transaction: sources, entities, articles and links are written together
or not at all, and an invalid item is rejected alone with its reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Final
from urllib.parse import urlsplit

from service.db.pool import Database
from service.db.writes import (
    ArticleRow,
    EntityRef,
    EntityRow,
    LinkRow,
    SourceRow,
    replace_links,
    resolve_entities,
    upsert_articles,
    upsert_entities,
    upsert_sources,
)
from service.errors import BadInput
from service.ingest.normalize import canonicalize_url, content_hash, parse_published_at, slugify

__all__ = ["ItemError", "ItemResult", "ingest_batch", "load_catalogue"]

ENTITY_KINDS: Final = frozenset({"PERSON", "ORGANIZATION", "PLACE", "EVENT", "PRODUCT", "OTHER"})


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
    entities: list[tuple[EntityRef, float, int]] = field(default_factory=list)


class _Problems:
    def __init__(self, index: int) -> None:
        self.prefix = f"articles[{index}]"
        self.errors: list[ItemError] = []

    def add(self, name: str, message: str, code: str = "BAD_INPUT") -> None:
        self.errors.append(ItemError(f"{self.prefix}.{name}", code, message))


def _text(
    item: Mapping[str, object], key: str, problems: _Problems, *, required: bool = False
) -> str | None:
    value = item.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            problems.add(key, "is required")
        return None
    if not isinstance(value, str):
        problems.add(key, "must be a string")
        return None
    return value.strip()


def _strings(item: Mapping[str, object], key: str, problems: _Problems) -> tuple[str, ...]:
    value = item.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        problems.add(key, "must be a list of strings")
        return ()
    return tuple(v.strip() for v in value if v.strip())


def _prepare(index: int, item: object, now: datetime) -> _Draft | list[ItemError]:
    problems = _Problems(index)
    if not isinstance(item, Mapping):
        problems.errors.append(ItemError(problems.prefix, "BAD_INPUT", "must be an object"))
        return problems.errors
    url = _text(item, "url", problems, required=True)
    title = _text(item, "title", problems, required=True)
    canonical = None
    if url is not None:
        try:
            raw_canonical = _text(item, "canonicalUrl", problems)
            url = canonicalize_url(url)
            canonical = canonicalize_url(raw_canonical) if raw_canonical else url
        except BadInput as exc:
            problems.add("url", exc.message)
    published_text = _text(item, "publishedAt", problems)
    published_at, estimated = now, True
    if published_text is not None:
        try:
            published_at, estimated = parse_published_at(published_text), False
        except BadInput as exc:
            problems.add("publishedAt", exc.message)
    source = item.get("source") or {}
    if not isinstance(source, Mapping):
        problems.add("source", "must be an object")
        source = {}
    domain = (str(source.get("domain") or "") or urlsplit(url or "").hostname or "").lower()
    domain = domain.removeprefix("www.")
    entities: list[tuple[EntityRef, float, int]] = []
    raw_entities = item.get("entities") or []
    if not isinstance(raw_entities, list):
        problems.add("entities", "must be a list")
        raw_entities = []
    for i, entity in enumerate(raw_entities):
        if not isinstance(entity, Mapping) or not isinstance(entity.get("name"), str):
            problems.add(f"entities[{i}]", "must be an object with a name")
            continue
        kind = str(entity.get("kind") or "OTHER").upper()
        if kind not in ENTITY_KINDS:
            problems.add(f"entities[{i}].kind", f"must be one of {', '.join(sorted(ENTITY_KINDS))}")
            continue
        salience = entity.get("salience", 0.5)
        if not isinstance(salience, int | float) or not 0 <= salience <= 1:
            problems.add(f"entities[{i}].salience", "must be a number from 0 to 1")
            continue
        name = str(entity["name"]).strip()
        wikidata = entity.get("wikidataId")
        entities.append(
            (
                EntityRef(name, kind, slugify(name), str(wikidata) if wikidata else None),
                float(salience),
                1,
            )
        )
    summary = _text(item, "summary", problems)
    body = _text(item, "body", problems)
    language = (_text(item, "language", problems) or "und").lower()
    section = _text(item, "section", problems)
    authors = _strings(item, "authors", problems)
    tags = _strings(item, "tags", problems)
    if problems.errors or url is None or title is None or canonical is None:
        return problems.errors
    entity_names = sorted(ref.name for ref, _, _ in entities)
    dated = None if estimated else published_at
    digest = content_hash(
        url, title, summary, body, authors, language, section, tags, dated, entity_names
    )
    return _Draft(
        index=index,
        source=SourceRow(
            domain=domain,
            name=str(source.get("name") or domain),
            country=str(source["country"]).upper() if source.get("country") else None,
        ),
        row=ArticleRow(
            source_id=0,
            url=url,
            canonical_url=canonical,
            title=title,
            published_at=published_at,
            published_at_estimated=estimated,
            content_hash=digest,
            summary=summary,
            body=body,
            authors=authors,
            language=language,
            section=section,
            tags=tags,
            external_id=_text(item, "externalId", problems),
        ),
        entities=entities,
    )


async def ingest_batch(db: Database, items: Sequence[object]) -> list[ItemResult]:
    """Validate, normalise and store `items`; one result per item, in input order."""
    now = datetime.now(UTC)
    results: list[ItemResult | None] = [None] * len(items)
    drafts: dict[str, _Draft] = {}
    repeats: dict[int, str] = {}
    for index, item in enumerate(items):
        prepared = _prepare(index, item, now)
        if isinstance(prepared, list):
            results[index] = ItemResult(index, "REJECTED", errors=tuple(prepared))
            continue
        key = prepared.row.canonical_url
        if key in drafts:  # the last copy in the batch wins; earlier ones share its result
            repeats[drafts[key].index] = key
        drafts[key] = prepared
    if drafts:
        async with db.transaction() as w:
            source_ids = await upsert_sources(w, [d.source for d in drafts.values()])
            rows = [_with_source(d, source_ids[d.source.domain]) for d in drafts.values()]
            outcomes = await upsert_articles(w, rows)
            changed = [
                (d, o)
                for d, o in zip(drafts.values(), outcomes, strict=True)
                if o.status != "UNCHANGED"
            ]
            refs = [ref for d, _ in changed for ref, _, _ in d.entities]
            entity_ids = iter(await resolve_entities(w, refs)) if refs else iter(())
            links = [
                LinkRow(o.id, next(entity_ids), salience, mentions)
                for d, o in changed
                for _, salience, mentions in d.entities
            ]
            await replace_links(w, [o.id for _, o in changed], links)
        by_url = {d.row.canonical_url: o for d, o in zip(drafts.values(), outcomes, strict=True)}
        for draft in drafts.values():
            outcome = by_url[draft.row.canonical_url]
            results[draft.index] = ItemResult(draft.index, outcome.status, outcome.id)
        for index, key in repeats.items():
            outcome = by_url[key]
            results[index] = ItemResult(index, outcome.status, outcome.id)
    return [r for r in results if r is not None]


def _with_source(draft: _Draft, source_id: int) -> ArticleRow:
    return replace(draft.row, source_id=source_id)


async def load_catalogue(db: Database, entities: Sequence[Mapping[str, object]]) -> list[int]:
    """Create or update catalogue entities from `{name, kind, wikidataId, aliases, description}`."""
    rows = []
    for entity in entities:
        name = str(entity["name"]).strip()
        kind = str(entity.get("kind") or "OTHER").upper()
        if kind not in ENTITY_KINDS:
            raise BadInput(f"unknown entity kind {kind!r} for {name!r}")
        aliases = entity.get("aliases") or []
        rows.append(
            EntityRow(
                name=name,
                kind=kind,
                slug=slugify(name),
                wikidata_id=str(entity["wikidataId"]) if entity.get("wikidataId") else None,
                description=str(entity["description"]) if entity.get("description") else None,
                aliases=tuple(str(a) for a in aliases) if isinstance(aliases, list) else (),
            )
        )
    async with db.transaction() as w:
        return await upsert_entities(w, rows)
