"""Subscriptions through the API: requests on the ``subscriptions`` topic (source ``api``), remembered in Redis.

The ingest streams a symbol while any source wants it, so these calls never stop symbols that
TICKWIRE_SYMBOLS or open positions keep subscribed.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException

from consumers.api.broker import OutgoingRecord
from consumers.api.dependencies import Authorized, Context, Symbol
from consumers.api.models import SubscribeRequest, SubscribeResponse, SubscriptionsResponse, UnsubscribeResponse
from consumers.api.status_reads import read_ingest_status
from schemas.events import SubscriptionRequest
from schemas.timestamps import format_ns, now_ns
from schemas.topics import API_SUBSCRIPTIONS_KEY, SUBSCRIPTIONS, subscription_key
from tickwire.redis_values import as_text

router = APIRouter(prefix="/api/v1", tags=["subscriptions"])
API_SOURCE = "api"


def subscription_record(symbol: str, action: Literal["subscribe", "unsubscribe"]) -> OutgoingRecord:
    """The ``subscriptions`` record asking the ingest to (un)subscribe ``symbol`` on the API's behalf."""
    request = SubscriptionRequest(symbol=symbol, action=action, source=API_SOURCE, requested_at=format_ns(now_ns()))
    return OutgoingRecord(SUBSCRIPTIONS.name, subscription_key(request.source, symbol), request.to_json())


@router.post("/subscribe", status_code=201, response_model=SubscribeResponse, dependencies=[Authorized],
             responses={401: {"description": "token required"}, 503: {"description": "broker or Redis down"}})
async def subscribe(body: SubscribeRequest, context: Context) -> SubscribeResponse:
    """Ask the ingest to stream ``symbols`` (idempotent: subscribing twice is harmless)."""
    # The topic first: if it fails, Redis does not claim a subscription nobody asked the ingest for.
    await context.broker.publish([subscription_record(s, "subscribe") for s in body.symbols])
    pipe = context.redis.pipeline(transaction=True)
    pipe.sadd(API_SUBSCRIPTIONS_KEY, *body.symbols)
    pipe.scard(API_SUBSCRIPTIONS_KEY)
    _, total = await pipe.execute()
    count = len(body.symbols)
    return SubscribeResponse(message=f"Successfully subscribed to {count} symbol{'s' if count != 1 else ''}",
                             subscribed_symbols=body.symbols, total_subscriptions=total)


@router.delete("/subscribe/{symbol}", response_model=UnsubscribeResponse, dependencies=[Authorized],
               responses={401: {"description": "token required"},
                          404: {"description": "not subscribed through the API"},
                          503: {"description": "broker or Redis down"}})
async def unsubscribe(symbol: Symbol, context: Context) -> UnsubscribeResponse:
    """Withdraw the API's request for ``symbol``."""
    if not await context.redis.sismember(API_SUBSCRIPTIONS_KEY, symbol):
        raise HTTPException(404, f"{symbol} is not subscribed through the API "
                                 "(symbols from TICKWIRE_SYMBOLS or open positions have their own sources)")
    await context.broker.publish([subscription_record(symbol, "unsubscribe")])
    pipe = context.redis.pipeline(transaction=True)
    pipe.srem(API_SUBSCRIPTIONS_KEY, symbol)
    pipe.scard(API_SUBSCRIPTIONS_KEY)
    _, remaining = await pipe.execute()
    return UnsubscribeResponse(message=f"Successfully unsubscribed from {symbol}", remaining_subscriptions=remaining)


@router.get("/subscriptions", response_model=SubscriptionsResponse)
async def subscriptions(context: Context) -> SubscriptionsResponse:
    """The API's subscriptions, and what the ingest streams right now (null when it is not running)."""
    requested = sorted(as_text(s) for s in await context.redis.smembers(API_SUBSCRIPTIONS_KEY))
    ingest = await read_ingest_status(context.redis)
    streaming = sorted(ingest.subscribed_symbols) if ingest else None
    pending = [s for s in requested if streaming is None or s not in set(streaming)]
    return SubscriptionsResponse(symbols=requested, count=len(requested), streaming=streaming, pending=pending)
