"""The API's OpenAPI document as the service really answers: its error bodies, its SSE stream, examples.

FastAPI documents every 422 as its own ``HTTPValidationError`` (an array ``detail``), but tickwire's
handlers answer ``{"detail": str, "errors": [...]}`` (``errors.py``); a generated client must be able to
parse what it gets, so the generated document is corrected here, once, when it is first asked for.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from consumers.api.models import EXAMPLE_TIME, ErrorBody, ValidationErrorBody
from schemas.events import IngestStatus, PriceSnapshot
from schemas.published import DIALECT, SchemaIndex, SchemaIndexEntry
from schemas.symbols import SYMBOL_PATTERN

REF = "#/components/schemas/{model}"
STREAM_PATH = "/api/v1/stream"
# Operations that answer 503 without Redis or the broker, and those that never do.
NEVER_503 = ("/metrics", "/schemas", "/schemas/{name}")
STREAM_EXAMPLE = (
    "retry: 2000\nevent: snapshot\ndata: {\"prices\": {\"AAPL\": {\"symbol\": \"AAPL\", \"bid\": \"230.09\", "
    "\"ask\": \"230.11\", \"mid\": \"230.10\", ...}}, \"pnl\": {}, \"total\": null}\n\n"
    "event: price\nid: 1733560000123-0@price.stream.AAPL\ndata: {\"event_type\": \"price.updated\", "
    "\"symbol\": \"AAPL\", \"price\": \"230.10\", "
    f"\"bid\": \"230.09\", \"ask\": \"230.11\", \"timestamp\": \"{EXAMPLE_TIME}\"}}\n\n: keep-alive\n\n"
)


def shared_model_examples() -> dict[str, dict[str, Any]]:
    """Examples of the shared event models the API serves (schemas/ has none), built by the models."""
    price = PriceSnapshot(symbol="AAPL", bid=Decimal("230.09"), ask=Decimal("230.11"), mid=Decimal("230.10"),
                          spread=Decimal("0.02"), spread_bps=Decimal("0.87"), bid_size=3, ask_size=5,
                          timestamp=EXAMPLE_TIME, exchange="V")
    ingest = IngestStatus(role="active", connected=True, healthy=True,
                          stream_url="wss://stream.data.alpaca.markets/v2/iex",
                          subscribed_symbols=["AAPL", "MSFT"], reconnect_attempts=0, queue_depth=0, overflow=0,
                          messages_received={"q": 5120, "t": 1310}, messages_published={"q": 5120, "t": 1310},
                          last_message_at={"AAPL": EXAMPLE_TIME}, gaps=0, updated_at=EXAMPLE_TIME)
    entry = SchemaIndexEntry(file="topic.prices.value.json", kind="topic", part="value", topic="prices",
                             model="PriceEvent", description="Validated quotes that became the latest price",
                             compacted=False, tombstones=False)
    index = SchemaIndex(dialect=DIALECT, generator="tools/json_schemas.py",
                        placeholders={"SYMBOL": SYMBOL_PATTERN.pattern.removeprefix("^").removesuffix("$")},
                        schemas={"topic.prices.value": entry})
    return {"PriceSnapshot": price.model_dump(mode="json"), "IngestStatus": ingest.model_dump(mode="json"),
            "SchemaIndexEntry": entry.model_dump(mode="json", exclude_none=True),
            "SchemaIndex": index.model_dump(mode="json", exclude_none=True)}


ERROR_DESCRIPTIONS = {"401": "bearer token missing or wrong", "404": "not found", "413": "request body too large",
                      "503": "a backing service (Redis, the broker) is unavailable"}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` return the corrected document (built on first use, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = corrected_openapi(
                get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes))
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def corrected_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with tickwire's real error bodies, the SSE media type and examples on every model."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in (ValidationErrorBody, ErrorBody):
        _add_model(schemas, model)
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            if "422" in responses:
                responses["422"] = _json_response("the request is invalid: what is wrong, field by field",
                                                  "ValidationErrorBody")
            if path not in NEVER_503:
                responses.setdefault("503", {"description": ERROR_DESCRIPTIONS["503"]})
            if "requestBody" in operation:
                responses.setdefault("413", {"description": ERROR_DESCRIPTIONS["413"]})
            for status, response in responses.items():
                if status[0] in "45" and not response.get("content"):
                    response["content"] = _json_response(response.get("description", ""), "ErrorBody")["content"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    stream = document.get("paths", {}).get(STREAM_PATH, {}).get("get")
    if stream is not None:
        stream["responses"]["200"]["content"] = {
            "text/event-stream": {"schema": {"type": "string", "description": "Server-Sent Events"},
                                  "example": STREAM_EXAMPLE}}
    for name, example in shared_model_examples().items():
        if name in schemas and "examples" not in schemas[name]:
            schemas[name]["examples"] = [example]
    return document


def _json_response(description: str, model: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}


def _add_model(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template=REF)
    schemas.update(schema.pop("$defs", {}))
    schemas[model.__name__] = schema

