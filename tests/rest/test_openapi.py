"""`GET /openapi.json` describes the REST routes the app has, as their handlers answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import orjson
from starlette.routing import Route

from service.app import create_app
from service.config import Settings
from service.ingest.pipeline import ItemError
from service.ingest.stream import LineResult, error_line, result_line
from service.rest.openapi import DOCUMENT

SCHEMAS = DOCUMENT["components"]["schemas"]


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


async def test_the_document_is_served_as_openapi_3_1(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert document == orjson.loads(orjson.dumps(DOCUMENT))
    assert document["openapi"].startswith("3.1.")
    assert document["info"]["title"]
    assert document["info"]["version"]
    ingest = document["paths"]["/v1/ingest"]["post"]
    assert set(ingest["requestBody"]["content"]) == {"application/x-ndjson", "application/jsonl"}
    assert {"200", "415", "503"} <= set(ingest["responses"])
    assert "application/x-ndjson" in ingest["responses"]["200"]["content"]
    assert "get" in document["paths"]["/healthz"]
    assert {"200", "503"} <= set(document["paths"]["/readyz"]["get"]["responses"])


def test_every_reference_resolves_and_every_operation_is_complete() -> None:
    for ref in refs(DOCUMENT):
        assert ref.startswith("#/components/schemas/")
        assert ref.removeprefix("#/components/schemas/") in SCHEMAS, ref
    ids = []
    for operations in DOCUMENT["paths"].values():
        for operation in operations.values():
            assert operation["summary"]
            assert operation["responses"]
            ids.append(operation["operationId"])
    assert len(ids) == len(set(ids))


def test_every_documented_path_is_a_route_of_the_app(settings: Settings) -> None:
    routes = {
        route.path: route.methods or set()
        for route in create_app(settings).routes
        if isinstance(route, Route)
    }
    for path, operations in DOCUMENT["paths"].items():
        assert path in routes, path
        assert {method.upper() for method in operations} <= routes[path], path


def test_article_input_lists_the_fields_the_pipeline_reads() -> None:
    article = SCHEMAS["ArticleInput"]
    assert article["required"] == ["url", "title"]
    assert set(article["properties"]) == {
        "url", "canonicalUrl", "title", "summary", "body", "authors", "publishedAt",
        "language", "section", "tags", "source", "image", "externalId", "entities",
    }  # fmt: skip
    assert set(article["properties"]["source"]["properties"]) == {"domain", "name", "country"}
    assert set(article["properties"]["image"]["properties"]) == {
        "url", "credit", "caption", "alt", "width", "height",
    }  # fmt: skip
    assert set(SCHEMAS["EntityMention"]["properties"]) == {
        "name", "kind", "wikidataId", "salience",
    }  # fmt: skip


def test_result_and_error_schemas_match_what_the_handler_writes() -> None:
    result = orjson.loads(
        result_line(LineResult(3, "REJECTED", None, (ItemError("line", "BAD_INPUT", "bad"),)))
    )
    schema = SCHEMAS["IngestResult"]
    assert set(result) == set(schema["required"]) == set(schema["properties"])
    assert result["status"] in schema["properties"]["status"]["enum"]
    assert set(result["errors"][0]) == set(SCHEMAS["ItemError"]["required"])
    error = orjson.loads(error_line("SERVICE_UNAVAILABLE", "down"))
    body = SCHEMAS["ErrorBody"]
    assert set(error) == set(body["required"])
    assert set(error["error"]) == set(body["properties"]["error"]["required"])
    assert error["error"]["code"] in body["properties"]["error"]["properties"]["code"]["enum"]
