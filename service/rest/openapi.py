"""`GET /openapi.json`: the OpenAPI 3.1 description of the REST part of the service.

Written by hand (a static dict built once at import), next to the handlers it describes:
`service/rest/ingest.py` for `POST /v1/ingest`, `service/rest/health.py` for the probes.
GraphQL is described by its own schema (`schema/schema.graphql`), not here.
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version
from typing import Any, Final

from starlette.requests import Request
from starlette.responses import JSONResponse

from service.rest.reads_openapi import OPENAPI_PATHS, OPENAPI_SCHEMAS

__all__ = ["DOCUMENT", "openapi"]


def _version() -> str:
    try:
        return version("newsgraph")
    except PackageNotFoundError:
        return "0.0.0"


def _string(description: str, **extra: Any) -> dict[str, Any]:
    return {"type": ["string", "null"], "description": description, **extra}


def _strings(description: str) -> dict[str, Any]:
    return {"type": ["array", "null"], "items": {"type": "string"}, "description": description}


def _error_body(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    }


_ARTICLE_INPUT: Final[dict[str, Any]] = {
    "type": "object",
    "description": (
        "One article to create or update. Articles are matched by canonical URL, so sending"
        " the same article again stores it once (UNCHANGED when its content is the same)."
        " Keys not listed here are ignored. Types and formats are checked per article: a"
        " bad article is REJECTED alone with its reasons."
    ),
    "required": ["url", "title"],
    "properties": {
        "url": {
            "type": "string",
            "format": "uri",
            "description": (
                "The article's http(s) URL. Canonicalised (scheme and host case, default"
                " ports, tracking parameters, fragments, trailing slashes)."
            ),
        },
        "canonicalUrl": _string(
            "The publisher's canonical URL, when it differs from `url`.", format="uri"
        ),
        "title": {"type": "string", "description": "The headline (HTML is reduced to text)."},
        "summary": _string("A short summary (plain text; HTML is reduced to text)."),
        "body": _string("The full text (plain text; HTML is reduced to text)."),
        "authors": _strings("Author names, in byline order."),
        "publishedAt": _string(
            "When it was published: RFC 3339 with an offset (`2026-11-25T09:00:00+01:00`);"
            " a date alone means 00:00 UTC. When absent, the ingest time is used and the"
            " article is flagged `publishedAtEstimated`.",
            format="date-time",
        ),
        "language": _string("The text's language as a code like `en` or `nb`."),
        "section": _string("The publisher's section, like `world` or `sport`."),
        "tags": _strings("The publisher's tags or keywords."),
        "source": {
            "type": ["object", "null"],
            "description": "The publisher; when absent, known by the URL's host.",
            "properties": {
                "domain": _string("The publisher's domain, like `nrk.no` (default: URL host)."),
                "name": _string("The publisher's name (default: its domain)."),
                "country": _string("ISO 3166-1 alpha-2 country code, like `NO`."),
            },
        },
        "image": {
            "type": ["object", "null"],
            "description": "The article's lead image.",
            "required": ["url"],
            "properties": {
                "url": {"type": "string", "format": "uri", "description": "The image's URL."},
                "credit": _string("Photographer or agency."),
                "caption": _string("The caption shown with the image."),
                "alt": _string("Alternative text for people who cannot see the image."),
                "width": {"type": ["integer", "null"], "minimum": 1, "description": "Pixels."},
                "height": {"type": ["integer", "null"], "minimum": 1, "description": "Pixels."},
            },
        },
        "externalId": _string("The publisher's own id for the article."),
        "entities": {
            "type": ["array", "null"],
            "description": "People, organisations, places… the article is about.",
            "items": {"$ref": "#/components/schemas/EntityMention"},
        },
    },
}

_ENTITY_MENTION: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "description": "The entity's name as the article gives it."},
        "kind": {
            "type": ["string", "null"],
            "enum": ["PERSON", "ORGANIZATION", "PLACE", "EVENT", "PRODUCT", "OTHER", None],
            "description": "What the entity is (default OTHER).",
        },
        "wikidataId": _string("The entity's Wikidata item id, like `Q42`.", pattern="^Q[0-9]+$"),
        "salience": {
            "type": ["number", "null"],
            "minimum": 0,
            "maximum": 1,
            "description": "How central the entity is to the article, 0–1 (default 0.5).",
        },
    },
}

_ITEM_ERROR: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["path", "code", "message"],
    "properties": {
        "path": {
            "type": "string",
            "description": (
                "What is wrong, relative to the line's article (`publishedAt`,"
                " `entities[0].kind`); `line` means the line as a whole."
            ),
        },
        "code": {
            "type": "string",
            "enum": ["BAD_INPUT", "LIMIT_EXCEEDED", "FORBIDDEN", "REMOVED"],
            "description": "FORBIDDEN: not the key's source or article; REMOVED: a URL of an"
            " article taken down (an admin must restore it).",
        },
        "message": {"type": "string", "description": "What to fix, for a developer."},
    },
}

_INGEST_RESULT: Final[dict[str, Any]] = {
    "type": "object",
    "description": "The result of one non-blank input line.",
    "required": ["line", "status", "id", "errors"],
    "properties": {
        "line": {
            "type": "integer",
            "minimum": 1,
            "description": "The input line's number, 1-based; blank lines count.",
        },
        "status": {"type": "string", "enum": ["CREATED", "UPDATED", "UNCHANGED", "REJECTED"]},
        "id": {
            "type": ["string", "null"],
            "description": "The article's global id (as in GraphQL `node(id:)`); null if rejected.",
        },
        "errors": {"type": "array", "items": {"$ref": "#/components/schemas/ItemError"}},
    },
}

_ERROR_BODY: Final[dict[str, Any]] = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {
                    "type": "string",
                    "enum": [
                        "UNSUPPORTED_MEDIA_TYPE",
                        "SERVICE_UNAVAILABLE",
                        "LIMIT_EXCEEDED",
                        "INTERNAL_SERVER_ERROR",
                    ],
                },
                "message": {"type": "string"},
            },
        }
    },
}

_INGEST_DESCRIPTION: Final = """\
Create or update articles in bulk. Send one ArticleInput object per line (NDJSON), read one
result per non-blank line, in input order.

- The body has no total size limit and is processed as it arrives. One line may hold at most
  1 MiB (`NEWSGRAPH_INGEST_MAX_LINE_BYTES`); a longer line, a line that is not UTF-8 or not a
  JSON object is REJECTED alone. Blank lines are skipped but counted in `line`.
- Lines are stored in batches (`NEWSGRAPH_INGEST_BATCH_SIZE`, default 500), one transaction
  each; a batch that is not full is stored half a second after its first line arrived. A
  result line is sent only after its batch was committed.
- The answer starts while the request is still being sent. Clients that read the answer only
  after sending everything get up to about 50,000 results held for them; past that, read
  while sending or split the input.
- If storing fails after answering began, the answer ends with one line
  `{"error": {"code", "message"}}`. Lines answered before it are stored, the others are not:
  send them again. Re-sending stored articles is safe: they come back UNCHANGED.
"""

_NDJSON_RESULTS: Final[dict[str, Any]] = {
    "schema": {
        "oneOf": [
            {"$ref": "#/components/schemas/IngestResult"},
            {"$ref": "#/components/schemas/ErrorBody"},
        ]
    }
}

DOCUMENT: Final[dict[str, Any]] = {
    "openapi": "3.1.0",
    "info": {
        "title": "Newsgraph REST API",
        "version": _version(),
        "description": (
            "The REST part of Newsgraph: bulk NDJSON ingest, reads for partners (articles,"
            " entities, sources, the change feed) and health probes. GraphQL at `/graphql`"
            " serves the same data."
        ),
    },
    "paths": {
        **OPENAPI_PATHS,
        "/v1/ingest": {
            "post": {
                "operationId": "ingestArticles",
                "summary": "Ingest articles from NDJSON, one result line per article",
                "description": _INGEST_DESCRIPTION,
                "tags": ["ingest"],
                "requestBody": {
                    "required": True,
                    "description": "NDJSON: one ArticleInput object per line.",
                    "content": {
                        "application/x-ndjson": {
                            "schema": {"$ref": "#/components/schemas/ArticleInput"}
                        },
                        "application/jsonl": {
                            "schema": {"$ref": "#/components/schemas/ArticleInput"}
                        },
                    },
                },
                "responses": {
                    "200": {
                        "description": (
                            "NDJSON: one IngestResult per non-blank input line, in order;"
                            " possibly ended by one ErrorBody line (see above)."
                        ),
                        "content": {"application/x-ndjson": _NDJSON_RESULTS},
                    },
                    "415": _error_body(
                        "The body is not NDJSON, or is compressed (`UNSUPPORTED_MEDIA_TYPE`)."
                    ),
                    "500": _error_body("An unexpected error before any result (with request id)."),
                    "503": _error_body(
                        "The database failed before any result (`SERVICE_UNAVAILABLE`); retry."
                    ),
                },
            }
        },
        "/healthz": {
            "get": {
                "operationId": "healthz",
                "summary": "Liveness: the process runs",
                "tags": ["health"],
                "responses": {
                    "200": {
                        "description": "Alive.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"status": {"const": "ok"}},
                                }
                            }
                        },
                    }
                },
            }
        },
        "/readyz": {
            "get": {
                "operationId": "readyz",
                "summary": "Readiness: the database answers and its schema is current",
                "tags": ["health"],
                "responses": {
                    "200": {
                        "description": "Ready to serve.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "status": {"const": "ready"},
                                        "schema": {
                                            "type": "string",
                                            "description": "The migration revision.",
                                        },
                                    },
                                }
                            }
                        },
                    },
                    "503": {
                        "description": "Not ready, with the reason.",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "status": {"const": "unavailable"},
                                        "reason": {"type": "string"},
                                    },
                                }
                            }
                        },
                    },
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document",
                "tags": ["meta"],
                "responses": {
                    "200": {
                        "description": "The OpenAPI 3.1 document of the REST API.",
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    }
                },
            }
        },
    },
    "components": {
        "schemas": {
            "ArticleInput": _ARTICLE_INPUT,
            "EntityMention": _ENTITY_MENTION,
            "IngestResult": _INGEST_RESULT,
            "ItemError": _ITEM_ERROR,
            "ErrorBody": _ERROR_BODY,
            **OPENAPI_SCHEMAS,
        }
    },
}


async def openapi(request: Request) -> JSONResponse:
    return JSONResponse(DOCUMENT, headers={"Cache-Control": "public, max-age=300"})
