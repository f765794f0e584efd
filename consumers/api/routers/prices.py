"""``GET /api/v1/prices/{symbol}``: a symbol's latest validated price."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from consumers.api.dependencies import Context, Symbol
from schemas.events import PriceSnapshot
from schemas.topics import price_key

router = APIRouter(prefix="/api/v1/prices", tags=["prices"])


@router.get("/{symbol}", response_model=PriceSnapshot, responses={404: {"description": "no live price"}})
async def latest_price(symbol: Symbol, context: Context) -> Response:
    """The latest price (bid, ask, mid, spread, exchange time) as stored by the price processor."""
    raw = await context.redis.get(price_key(symbol))
    if raw is None:
        raise HTTPException(404, f"no live price for {symbol}: never received, or older than "
                                 f"TICKWIRE_PRICE_TTL_SECONDS ({context.settings.price_ttl_s} s)")
    return Response(raw, media_type="application/json")
