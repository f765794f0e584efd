"""create_app: the market-data service (routers, error handlers, metrics, clients opened in the lifespan)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from consumers.api.context import ApiContext
from consumers.api.errors import BodyLimitMiddleware, install_error_handlers
from consumers.api.metrics import ApiMetrics, RequestMetricsMiddleware
from consumers.api.openapi import install_openapi
from consumers.api.routers import dashboard, health, positions, prices, schemas, stats, stream, subscriptions
from consumers.api.settings import ApiSettings
from schemas.published import PublishedSchemas

DESCRIPTION = """Live prices and real-time unrealized P&L from tickwire's Redis projections.

Mutating calls (`POST`/`DELETE /api/v1/subscribe`, `PUT /api/v1/positions/{symbol}`) need
`Authorization: Bearer <token>` when `TICKWIRE_API_TOKEN` is set.

Prices, quantities and P&L are exact decimal strings (`"150.25"`), in requests and responses alike: a JSON
number in a request is refused with a 422 saying so. Every 422 is `{"detail": "<one line>", "errors": [...]}`;
every other error is `{"detail": "<one line>"}`.
"""


def create_app(settings: ApiSettings | None = None) -> FastAPI:
    """The FastAPI app for ``settings`` (read from the environment when omitted)."""
    settings = settings or ApiSettings()
    metrics = ApiMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        context = ApiContext.create(settings, metrics)
        app.state.context = context
        try:
            yield
        finally:
            await context.close()

    app = FastAPI(title="tickwire market-data service", version="1.0.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(RequestMetricsMiddleware, metrics=metrics)
    install_error_handlers(app)
    install_openapi(app)
    # True once the server shuts down (set by whoever serves the app): push streams then end by themselves.
    app.state.stopping = lambda: False
    # Read here, once: a missing or broken schema file stops the app from being built, not a request.
    app.state.schemas = PublishedSchemas.load()
    for router in (health.router, subscriptions.router, positions.router, prices.router, stats.router,
                   stream.router, schemas.router, dashboard.router):
        app.include_router(router)
    return app
