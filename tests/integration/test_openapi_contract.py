"""The API's OpenAPI document is its contract: real responses conform to it (schemathesis, on real Redis).

Every status code, content type and body the service answers must be the documented one, so a client
generated from ``/openapi.json`` can parse errors as well as successes. The broker is not configured
(fuzzed writes must not reach shared topics), so valid writes answer the documented 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis.asyncio import Redis
from schemathesis import GenerationMode
from schemathesis.checks import content_type_conformance, response_schema_conformance, status_code_conformance

from consumers.api import create_app
from schemas.topics import INGEST_STATUS_KEY
from tests.integration.api_support import (
    api_client,
    api_settings,
    seed_close,
    seed_pnl,
    seed_position,
    seed_price,
    threaded_server,
)
from tests.integration.test_api_endpoints import ingest_status

pytestmark = pytest.mark.integration

CONTRACT_EXAMPLES = 300
ENDLESS = ("/api/v1/stream",)  # Server-Sent Events never end; its media type is checked below
TOKEN = "contract-token"
CHECKS = [response_schema_conformance, status_code_conformance, content_type_conformance]


async def _seed(url: str) -> None:
    """A price, a close, a position, its P&L and an ingest status: responses with rows to check."""
    redis = Redis.from_url(url)
    try:
        await redis.flushdb()
        await seed_price(redis, "AAPL", "230.09", "230.11", ttl_s=3600)
        await seed_close(redis, "AAPL", "228.50")
        await seed_position(redis, "AAPL", "100", "150.25")
        await seed_pnl(redis, "AAPL", "100", "150.25", "230.10", "7985.00", "7985.00")
        await redis.set(INGEST_STATUS_KEY, ingest_status(["AAPL", "MSFT"]).to_json(), ex=3600)
    finally:
        await redis.aclose()


@pytest.fixture(scope="module")
def contract_api(redis_server_url: str) -> Iterator[str]:
    """The real app on a seeded Redis database, behind uvicorn in a thread (schemathesis calls are synchronous)."""
    url = redis_server_url.rsplit("/", 1)[0] + "/14"
    asyncio.run(_seed(url))
    with threaded_server(api_settings(url, TICKWIRE_API_TOKEN=TOKEN)) as base_url:
        yield base_url


def test_responses_given_fuzzed_requests_conform_to_the_documented_status_type_and_schema(contract_api: str) -> None:
    """Test valid and invalid requests, with and without the token: every answer is as documented."""
    schema = schemathesis.openapi.from_dict(create_app(api_settings("redis://127.0.0.1:1/0")).openapi())
    operations = [result.ok() for result in schema.get_all_operations()]
    operations = [op for op in operations if op.path not in ENDLESS]
    strategy = st.one_of(*[op.as_strategy(generation_mode=mode) for op in operations
                           for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)])
    seen: dict[str, int] = {}

    @settings(max_examples=CONTRACT_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(case=strategy, authorized=st.booleans())
    def call(case: schemathesis.Case, authorized: bool) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"} if authorized else {}
        response = case.call(base_url=contract_api, headers=headers, timeout=15)
        seen[str(response.status_code)] = seen.get(str(response.status_code), 0) + 1
        case.validate_response(response, checks=CHECKS, headers=headers)

    call()
    print(f"OpenAPI contract: answers by status {dict(sorted(seen.items()))}")
    assert {"200", "422"} <= set(seen)  # both successes and validation errors were checked


def test_openapi_documents_the_real_error_bodies_examples_and_the_event_stream() -> None:
    """Test the document itself: our 422 body, no FastAPI HTTPValidationError, examples, SSE media type."""
    spec = create_app(api_settings("redis://127.0.0.1:1/0")).openapi()
    schemas = spec["components"]["schemas"]
    responses = [(path, method, status, response) for path, ops in spec["paths"].items()
                 for method, op in ops.items() for status, response in op["responses"].items()]

    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    assert set(schemas["ValidationErrorBody"]["required"]) == {"detail", "errors"}
    assert schemas["ValidationErrorBody"]["properties"]["detail"]["type"] == "string"
    for path, method, status, response in responses:
        if status == "422":
            assert response["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ValidationErrorBody"}, (method, path)
        elif status[0] in "45":
            assert "application/json" in response["content"], (method, path, status)
    assert [name for name, model in schemas.items() if not model.get("examples")] == []
    assert list(spec["paths"]["/api/v1/stream"]["get"]["responses"]["200"]["content"]) == ["text/event-stream"]
    money = schemas["PositionUpdate"]["properties"]
    assert money["qty"]["type"] == money["avg_entry_price"]["type"] == "string"


@pytest.mark.parametrize(("body", "detail"), [
    ({"qty": 100, "avg_entry_price": "150.25"},
     'qty: qty must be a decimal string such as "100", not a JSON number'),
    ({"qty": "100", "avg_entry_price": 150.25},
     'avg_entry_price: avg_entry_price must be a decimal string such as "150.25", not a JSON number'),
    ({"qty": "1e3", "avg_entry_price": "1"}, "qty: qty must be plain digits such as \"1000\" or \"0.5\", got '1e3'"),
])
async def test_position_given_a_money_field_that_is_not_a_decimal_string_answers_422_saying_so(
        redis_url: str, body: dict[str, object], detail: str) -> None:
    """Test that JSON numbers (and exponent forms the schema's pattern excludes) get a 422, as documented."""
    async with api_client(api_settings(redis_url)) as client:
        response = await client.put("/api/v1/positions/AAPL", json=body)

    assert response.status_code == 422, response.text
    assert response.json()["detail"].startswith(detail)
    assert response.json()["errors"][0]["loc"][0] == "body"


async def test_invalid_path_and_query_values_answer_the_same_422_body_as_invalid_bodies(redis_url: str) -> None:
    """Test that a symbol or account checked in code answers ``{"detail", "errors"}`` like pydantic's own."""
    async with api_client(api_settings(redis_url)) as client:
        symbol = await client.get("/api/v1/prices/not$a$symbol")
        account = await client.get("/api/v1/positions", params={"account": "no spaces"})

    for response, loc in ((symbol, ["path", "symbol"]), (account, ["query", "account"])):
        assert response.status_code == 422
        body = response.json()
        assert set(body) == {"detail", "errors"} and body["errors"][0]["loc"] == loc
    assert symbol.json()["detail"].startswith("symbol: invalid symbol 'not$a$symbol'")

