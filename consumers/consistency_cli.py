"""``tickwire check``: run the consistency oracle against live Redis (and the tables, and the API)."""

from __future__ import annotations

from typing import Annotated

import typer

from consumers.tools.cli import SymbolOption, _run, _settings, _symbols


def check_command(
    symbol: SymbolOption = None,
    app_id: Annotated[str | None, typer.Option(help="also diff this processor's latest-price table changelog")] = None,
    api_url: Annotated[str | None, typer.Option(help="also diff the API at this base URL")] = None,
) -> None:
    """Rebuild the latest prices and P&L from quotes.raw and positions; diff Redis (exit 1 on any mismatch)."""
    import httpx
    from redis.asyncio import Redis

    from consumers.consistency import check
    from tickwire.kafka import aiokafka_security
    from tickwire.logging import quiet_library_logs

    settings = _settings(needs=("KAFKA_BOOTSTRAP_SERVERS", "REDIS_URL"))
    symbols = set(_symbols(symbol)) or None

    async def main() -> int:
        redis = Redis.from_url(settings.redis_url)
        client = httpx.AsyncClient(base_url=api_url, timeout=10) if api_url else None
        try:
            report = await check(settings.kafka_bootstrap_servers, redis, symbols, settings.quote_age_limit_s,
                                 app_id, client, **aiokafka_security(settings))
        finally:
            await redis.aclose()
            if client is not None:
                await client.aclose()
        for mismatch in report.mismatches:
            print(mismatch)
        print(report.summary())
        return 0 if report.ok else 1

    with quiet_library_logs("aiokafka", "asyncio"):  # a closed port: the one error line, no per-attempt logs
        code = _run(main())
    raise typer.Exit(code)
