from __future__ import annotations

import httpx
import pytest

from service.app import create_app
from service.config import ConfigError, Settings


async def test_graphql_over_post(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ articles(first: 2) { edges { node { title } } } }"}
    )
    assert response.status_code == 200
    assert len(response.json()["data"]["articles"]["edges"]) == 2


async def test_graphql_over_get_for_cacheable_queries(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql", params={"query": "{ sources(first: 1) { edges { node { name } } } }"}
    )
    assert response.status_code == 200
    assert response.json()["data"]["sources"]["edges"]


async def test_client_errors_are_never_http_500(client: httpx.AsyncClient) -> None:
    for body in (
        {"query": "{ articles(first: 1000) { edges { cursor } } }"},
        {"query": "{ nope"},
        {"query": '{ article(id: "%%%") { id } }'},
    ):
        response = await client.post("/graphql", json=body)
        assert response.status_code in (200, 400)
        assert response.json()["errors"][0]["extensions"]["code"]
    not_json = await client.post(
        "/graphql", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 400


async def test_oversized_bodies_are_refused(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "{ articles { edges { cursor } } }", "x": "y" * 11_000_000}
    )
    assert response.status_code == 413


def test_the_app_needs_a_database_url() -> None:
    with pytest.raises(ConfigError, match="newsgraph serve"):
        create_app(Settings.from_environ({}))
