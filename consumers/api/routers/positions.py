"""Positions: publish one to the ``positions`` topic, list an account's, and value them at live prices."""

from __future__ import annotations

from decimal import Decimal

import orjson
from fastapi import APIRouter
from fastapi.responses import Response

from consumers.api.broker import OutgoingRecord
from consumers.api.dependencies import Account, Authorized, Context, Symbol
from consumers.api.models import (
    PositionAccepted,
    PositionOut,
    PositionsResponse,
    PositionUpdate,
    RealtimePnLResponse,
)
from schemas.events import Position
from schemas.timestamps import format_ns, now_ns
from schemas.topics import POSITIONS, position_key, positions_key

router = APIRouter(prefix="/api/v1/positions", tags=["positions"])


@router.put("/{symbol}", status_code=202, response_model=PositionAccepted, dependencies=[Authorized],
            responses={401: {"description": "token required"}, 503: {"description": "broker down"}})
async def set_position(symbol: Symbol, body: PositionUpdate, context: Context) -> PositionAccepted:
    """Publish the position to the ``positions`` topic; the P&L processor values it (qty "0" closes it)."""
    position = Position(account=body.account, symbol=symbol, qty=body.qty, avg_entry_price=body.avg_entry_price,
                        updated_at=format_ns(now_ns()))
    await context.broker.publish([OutgoingRecord(POSITIONS.name, position_key(body.account, symbol),
                                                 position.to_json())])
    verb = "closed" if position.qty == 0 else "set"
    return PositionAccepted(message=f"{symbol} position {verb} for account {body.account}",
                            position=PositionOut(**position.model_dump()))


@router.get("", response_model=PositionsResponse)
async def list_positions(context: Context, account: Account) -> PositionsResponse:
    """The account's open positions as the P&L processor last stored them."""
    raw = await context.redis.hgetall(positions_key(account))
    positions = sorted((Position.model_validate_json(v) for v in raw.values()), key=lambda p: p.symbol)
    return PositionsResponse(account=account, positions=[PositionOut(**p.model_dump()) for p in positions],
                             count=len(positions))


@router.get("/pnl/realtime", response_model=RealtimePnLResponse)
async def realtime_pnl(context: Context, account: Account) -> Response:
    """Every open position valued now at ``TICKWIRE_MARK_POLICY`` (else the previous close), to the cent."""
    valuation = await context.realtime_pnl.value_account(account)
    # Built directly (same shape as RealtimePnLResponse): validating 1,000 row models would double the time.
    rows = [{"symbol": p.symbol, "qty": _text(p.qty), "avg_entry_price": _text(p.avg_entry_price),
             "current_price": _text(p.mark_price), "unrealized_pnl": _text(p.unrealized_pnl),
             "price_source": p.price_source, "last_updated": p.price_timestamp} for p in valuation.positions]
    body = {"account": account, "mark_policy": context.realtime_pnl.policy, "positions": rows,
            "total_unrealized": _text(valuation.total_unrealized)}
    return Response(orjson.dumps(body), media_type="application/json")


def _text(value: Decimal | None) -> str | None:
    # Plain notation, as DecimalStr writes it.
    return None if value is None else format(value, "f")
