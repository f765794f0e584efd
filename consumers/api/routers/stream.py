"""``GET /api/v1/stream``: Server-Sent Events, a ``snapshot`` then every ``price`` and ``pnl`` change, resumable."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
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
                 symbols: Annotated[list[str] | None, Depends(symbols_query)],
                 last_event_id: Annotated[str | None, Header(
                     alias="Last-Event-ID", description="the id of the last event received: resume right after it "
                     "(browsers' EventSource sends it by itself when it reconnects)")] = None,
                 last_event_id_query: Annotated[str | None, Query(
                     alias="last_event_id", description="the same, for a client that opens a new connection "
                     "(the header wins when both are given)")] = None) -> EventSourceResponse:
    """Event ``snapshot`` (``prices``, the account's ``pnl`` and ``total``), then ``price`` (a ``PriceUpdated``)
    and ``pnl`` (a ``PnLUpdated``) events as they happen, each exactly once and in order, none missed between
    the snapshot and the first. Each change's ``id`` is its position in the Redis streams; a client that
    reconnects with it (``Last-Event-ID``) gets no snapshot but every change after it, or first a ``gap`` event
    (``stream``, ``symbol`` or ``account``, ``last_seen_id``, ``resumed_at_id``) for a stream whose cap
    (TICKWIRE_REDIS_STREAM_MAXLEN) trimmed what it missed. An id that is not a position starts anew."""
    live = LiveStream(context.redis, context.stream_redis, account, symbols,
                      resume_from=last_event_id or last_event_id_query, stopping=request.app.state.stopping)
    await live.open()  # before the 200: with Redis down the answer is a 503, not a broken stream
    return EventSourceResponse(_encode(live), headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _encode(live: LiveStream) -> AsyncIterator[bytes]:
    first = True
    async for event in live.events():
        if event.kind == "idle":
            yield KEEPALIVE  # keeps proxies from closing a quiet stream
            continue
        yield format_sse_event(data_str=event.data.decode(), event=event.kind, id=event.id,
                               retry=RECONNECT_MS if first else None)
        first = False
