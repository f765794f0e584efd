"""``GET /api/v1/prices/{symbol}``: a symbol's latest validated price."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from consumers.api.dependencies import Context, Symbol
from consumers.api.models import HistoryPointOut, PriceHistoryResponse
from consumers.api.price_history import session_start_ns
from schemas.events import PreviousClose, PriceSnapshot
from schemas.timestamps import now_ns, parse_ns
from schemas.topics import close_key, price_key

MAX_HISTORY_SECONDS = 3600

router = APIRouter(prefix="/api/v1/prices", tags=["prices"])


@router.get("/{symbol}", response_model=PriceSnapshot, responses={404: {"description": "no live price"}})
async def latest_price(symbol: Symbol, context: Context) -> Response:
    """The latest price (bid, ask, mid, spread, exchange time) as stored by the price processor."""
    raw = await context.redis.get(price_key(symbol))
    if raw is None:
        raise HTTPException(404, f"no live price for {symbol}: never received, or older than "
                                 f"TICKWIRE_PRICE_TTL_SECONDS ({context.settings.price_ttl_s} s)")
    return Response(raw, media_type="application/json")


@router.get("/{symbol}/history", response_model=PriceHistoryResponse)
async def price_history(symbol: Symbol, context: Context,
                        seconds: Annotated[int, Query(ge=1, le=MAX_HISTORY_SECONDS, examples=[300],
                                                      description="how far back")] = 300) -> PriceHistoryResponse:
    """The symbol's mids over the last ``seconds`` (one per second, read from the ``prices`` topic) and its
    previous close; with the broker down the points are empty and ``detail`` says why."""
    close = await _previous_close(context, symbol)
    history = await context.price_history.recent(symbol, seconds)
    return PriceHistoryResponse(symbol=symbol, seconds=seconds, previous_close=close, detail=history.detail,
                                points=[HistoryPointOut(timestamp=p.timestamp, mid=Decimal(p.mid))
                                        for p in history.points])


async def _previous_close(context: Context, symbol: str) -> Decimal | None:
    """``close:{SYMBOL}`` when it is an earlier session's; during a session it holds today's running daily
    bar, and the previous session's close then comes from Alpaca's REST snapshot, else ``bars.daily.raw``."""
    raw = await context.redis.get(close_key(symbol))
    stored = PreviousClose.model_validate_json(raw) if raw else None
    session_start = session_start_ns(now_ns())
    if stored is not None and parse_ns(stored.timestamp) < session_start:
        return stored.close
    from_rest = await context.alpaca_closes.previous_close(symbol, session_start)
    return from_rest if from_rest is not None else await context.price_history.previous_close(symbol, session_start)
