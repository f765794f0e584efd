"""The market-data service: FastAPI app serving prices, positions, real-time P&L, a push stream and a dashboard."""

from consumers.api.app import create_app

__all__ = ["create_app"]
