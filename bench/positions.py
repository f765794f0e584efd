"""The benchmark's book: M positions over N symbols, laid out so one account covers the sampled symbols."""

from __future__ import annotations

import random
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaProducer

from alpaca_feed.market import MarketModel
from schemas.topics import POSITIONS, position_key


@dataclass(frozen=True, slots=True)
class BenchPosition:
    """One position of the book."""

    account: str
    symbol: str
    qty: int
    avg_entry_price: str


def account_name(index: int) -> str:
    """``bench-0000``, ``bench-0001``, ..."""
    return f"bench-{index:04d}"


def build_book(symbols: list[str], positions: int, per_account: int, seed: int) -> list[BenchPosition]:
    """``positions`` positions, ``per_account`` per account, each symbol held about equally often.

    Account k holds symbols k, k+s, k+2s, ... (s = symbols / per_account), so account 0 holds every
    s-th symbol: the probe follows exactly those symbols' prices and that account's P&L channel.
    """
    per_account = max(1, min(per_account, len(symbols)))
    stride = max(1, len(symbols) // per_account)
    rng = random.Random(seed)
    model = MarketModel(seed)  # the feed's own start prices, so entry prices sit near the market
    book = []
    for i in range(positions):
        account, slot = divmod(i, per_account)
        symbol = symbols[(account + slot * stride) % len(symbols)]
        start = model.start_price(symbol)
        qty = rng.choice((-1, 1)) * rng.randint(1, 50) * 10
        book.append(BenchPosition(account_name(account), symbol, qty, f"{start * rng.uniform(0.95, 1.05):.2f}"))
    return book


def probe_symbols(book: list[BenchPosition]) -> list[str]:
    """The symbols of the first account: the ones the probe times."""
    first = book[0].account
    return sorted({p.symbol for p in book if p.account == first})


class BookPublisher:
    """A producer on ``positions`` (key ``account:symbol``), as another service would publish them."""

    def __init__(self, bootstrap: str) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)

    async def start(self) -> None:
        """Connect."""
        await self.producer.start()

    async def stop(self) -> None:
        """Flush and disconnect."""
        await self.producer.stop()

    async def send(self, positions: list[BenchPosition]) -> None:
        """Publish ``positions`` and wait until the broker has every one."""
        futures = [
            await self.producer.send(POSITIONS.name, orjson.dumps({"account": p.account, "symbol": p.symbol,
                                                                  "qty": str(p.qty),
                                                                  "avg_entry_price": p.avg_entry_price}),
                                     key=position_key(p.account, p.symbol).encode())
            for p in positions
        ]
        for future in futures:
            await future


async def publish_book(bootstrap: str, book: list[BenchPosition]) -> None:
    """Send every position to ``positions`` once."""
    publisher = BookPublisher(bootstrap)
    await publisher.start()
    try:
        await publisher.send(book)
    finally:
        await publisher.stop()
