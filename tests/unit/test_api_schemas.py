"""``GET /schemas`` and ``GET /schemas/{name}`` serve schemas/json/ byte for byte (no server: they need no Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from consumers.api import create_app
from consumers.api.settings import ApiSettings
from schemas.published import PublishedSchemas, SchemaIndex

NO_REDIS = "redis://127.0.0.1:1/0"  # never connected to: these routes read only what the app loaded


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(ApiSettings(REDIS_URL=NO_REDIS, KAFKA_BOOTSTRAP_SERVERS=None, TICKWIRE_API_TOKEN=None))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client


async def test_schemas_given_no_name_answers_the_index_file(client: httpx.AsyncClient) -> None:
    response = await client.get("/schemas")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == PublishedSchemas.load().index_text
    assert "topic.prices.value" in SchemaIndex.model_validate_json(response.content).schemas


async def test_schema_given_every_indexed_name_answers_its_file_as_schema_json(client: httpx.AsyncClient) -> None:
    published = PublishedSchemas.load()
    for name, text in published.texts.items():
        response = await client.get(f"/schemas/{name}")
        assert response.status_code == 200, name
        assert response.headers["content-type"] == "application/schema+json", name
        assert response.content == text, name


@pytest.mark.parametrize("name", ["topic.nope.value", "index", "index.json", "topic.prices.value.json"])
async def test_schema_given_an_unknown_name_answers_404_with_the_error_body(client: httpx.AsyncClient,
                                                                             name: str) -> None:
    response = await client.get(f"/schemas/{name}")

    assert response.status_code == 404
    assert response.json()["detail"].startswith("no schema named") and set(response.json()) == {"detail"}


def test_openapi_given_the_schema_routes_documents_them_without_503() -> None:
    spec = create_app(ApiSettings(REDIS_URL=NO_REDIS, KAFKA_BOOTSTRAP_SERVERS=None)).openapi()
    index, one = spec["paths"]["/schemas"]["get"], spec["paths"]["/schemas/{name}"]["get"]

    assert index["responses"]["200"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/SchemaIndex"}
    assert list(one["responses"]["200"]["content"]) == ["application/schema+json"]
    assert "application/json" in one["responses"]["404"]["content"]
    assert "503" not in index["responses"] and "503" not in one["responses"]
    assert spec["components"]["schemas"]["SchemaIndex"]["examples"]
