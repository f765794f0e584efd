"""A price's payloads, serialised once from its fields, are its models' JSON (event, snapshot, update)."""

from decimal import Decimal

import orjson
import pytest

from domain.price_payloads import payloads_of
from schemas.events import PriceEvent, PriceSnapshot, PriceUpdated


@pytest.mark.parametrize(("received_at", "bid_size"), [(None, 1), ("2026-01-01T00:00:01.000500000Z", 1), (None, 2**70)])
def test_price_payloads_given_price_event_are_the_models_json_byte_for_byte(received_at: str | None,
                                                                            bid_size: int) -> None:
    """Test the event, snapshot and update message against pydantic's own serialisation, exact decimals and sizes
    beyond 64 bits (orjson refuses them) included."""
    # Arrange
    event = PriceEvent(symbol="BRK.B", bid=Decimal("0.00001"), ask=Decimal("412.5"), mid=Decimal("206.250005"),
                       spread=Decimal("412.49999"), spread_bps=Decimal("19999.9515"), bid_size=bid_size, ask_size=2,
                       timestamp="2026-01-01T00:00:01.000000001Z", exchange="V", received_at=received_at)
    snapshot = PriceSnapshot(**event.model_dump(exclude={"received_at"}))
    update = PriceUpdated(symbol=event.symbol, price=event.mid, bid=event.bid, ask=event.ask,
                          timestamp=event.timestamp)
    # Act
    payloads = payloads_of(event)
    # Assert: byte for byte, since the Redis script compares stored snapshots as bytes
    assert payloads.event == event.to_json()
    assert payloads.snapshot == snapshot.to_json()
    assert orjson.loads(payloads.update) == orjson.loads(update.to_json())
    assert (payloads.symbol, payloads.timestamp) == (event.symbol, event.timestamp)
