"""``GET /api/v1/stream``: Server-Sent Events, a ``snapshot`` then every ``price`` and ``pnl`` change."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.sse import EventSourceResponse, format_sse_event

from consumers.api.dependencies import Account, Context
from consumers.api.errors import invalid_parameter
from consumers.api.live_stream import LiveStream
from consumers.api.models import MAX_SYMBOLS_PER_REQUEST
from schemas.symbols import normalize_symbol

router = APIRouter(prefix="/api/v1", tags=["stream"])
RECONNECT_MS = 2000
KEEPALIVE = b": keep-alive\n\n"


def symbols_query(
    symbols: Annotated[str | None, Query(description="comma list; omitted: every symbol with a price",
                                         examples=["AAPL,MSFT"])] = None,
) -> list[str] | None:
    """The optional ``symbols`` filter, normalised."""
    if symbols is None:
        return None
    try:
        parsed = list(dict.fromkeys(normalize_symbol(s) for s in symbols.split(",") if s.strip()))
    except ValueError as exc:
        raise invalid_parameter("query", "symbols", str(exc)) from None
    if len(parsed) > MAX_SYMBOLS_PER_REQUEST:
        raise invalid_parameter("query", "symbols", f"at most {MAX_SYMBOLS_PER_REQUEST}, got {len(parsed)}")
    return parsed


# No response_class: FastAPI would then call the endpoint as an event generator; this one returns the response.
@router.get("/stream", responses={200: {"content": {"text/event-stream": {}}, "description": "the event stream"},
                                  503: {"description": "Redis down"}})
async def stream(request: Request, context: Context, account: Account,
                 symbols: Annotated[list[str] | None, Depends(symbols_query)]) -> EventSourceResponse:
    """Event ``snapshot`` (``prices``, the account's ``pnl`` and ``total``), then ``price`` (a
    ``PriceUpdated``) and ``pnl`` (a ``PnLUpdated``) events as they happen, none missed and none repeated
    between the two. Browsers reconnect by themselves and get a fresh snapshot."""
    live = LiveStream(context.redis, context.pubsub_redis, account, symbols, stopping=request.app.state.stopping)
    await live.open()  # before the 200: with Redis down the answer is a 503, not a broken stream
    return EventSourceResponse(_encode(live), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _encode(live: LiveStream) -> AsyncIterator[bytes]:
    first = True
    async for event in live.events():
        if event.kind == "idle":
            yield KEEPALIVE  # keeps proxies from closing a quiet stream
            continue
        yield format_sse_event(data_str=event.data.decode(), event=event.kind, retry=RECONNECT_MS if first else None)
        first = False
