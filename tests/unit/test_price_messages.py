"""price.updated messages built without a model round trip are the PriceUpdated model's JSON."""

from decimal import Decimal

import orjson

from processors.redis_projection import update_message
from schemas.events import PriceEvent, PriceUpdated


def test_update_message_given_price_event_matches_the_price_updated_model() -> None:
    """Test that the hand-built message has the model's fields and exact decimal strings."""
    # Arrange
    event = PriceEvent(symbol="BRK.B", bid=Decimal("0.00001"), ask=Decimal("412.5"), mid=Decimal("206.250005"),
                       spread=Decimal("412.49999"), spread_bps=Decimal("19999.9515"), bid_size=1, ask_size=2,
                       timestamp="2026-01-01T00:00:01.000000001Z", exchange="V", received_at=None)
    model = PriceUpdated(symbol=event.symbol, price=event.mid, bid=event.bid, ask=event.ask, timestamp=event.timestamp)
    # Act
    built = orjson.loads(update_message(event))
    # Assert
    assert built == orjson.loads(model.to_json())
