"""``GET /schemas`` and ``GET /schemas/{name}``: the published JSON Schemas of every topic and Redis value.

The files are ``schemas/json/`` as shipped (``schemas/published.py``), read once when the app is built and
served byte for byte, so a service in any language validates what it reads with the files tickwire was tested
against.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import Response

from schemas.published import PublishedSchemas, SchemaIndex

router = APIRouter(tags=["schemas"])
SCHEMA_MEDIA_TYPE = "application/schema+json"
EXAMPLE_NAME = "topic.prices.value"


class SchemaResponse(Response):
    """A JSON Schema document, labelled as one (RFC draft media type ``application/schema+json``)."""

    media_type = SCHEMA_MEDIA_TYPE


def get_published(request: Request) -> PublishedSchemas:
    """The schemas the app read when it was built."""
    return cast(PublishedSchemas, request.app.state.schemas)


Published = Annotated[PublishedSchemas, Depends(get_published)]


@router.get("/schemas", response_model=SchemaIndex)
async def schema_index(published: Published) -> Response:
    """The index: every schema's name, file, and the topic or Redis name whose keys or values it describes,
    with the patterns of the placeholders (``{SYMBOL}``, ``{account}``) in those names. Read it first."""
    return Response(published.index_text, media_type="application/json")


@router.get("/schemas/{name}", response_class=SchemaResponse,
            responses={200: {"description": "the JSON Schema (draft 2020-12)",
                             "content": {SCHEMA_MEDIA_TYPE: {"schema": {"type": "object"}}}},
                       404: {"description": "no schema of that name"}})
async def schema(published: Published,
                 name: Annotated[str, Path(description="a name from GET /schemas", examples=[EXAMPLE_NAME])]
                 ) -> Response:
    """One schema, as committed in ``schemas/json/`` (404 for a name the index does not list)."""
    text = published.texts.get(name)
    if text is None:
        raise HTTPException(404, f"no schema named {name!r}: GET /schemas lists them")
    return SchemaResponse(text)
