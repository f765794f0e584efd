"""Serving the app with uvicorn: ``tickwire api`` in the foreground, or in-process on a given port."""

from __future__ import annotations

import asyncio
import sys

import uvicorn

from consumers.api.app import create_app
from consumers.api.settings import ApiSettings

# Streams end within a poll of shutdown; anything else still open after this is cut off.
GRACEFUL_SHUTDOWN_S = 2


def api_server(settings: ApiSettings, port: int | None = None, access_log: bool = False) -> uvicorn.Server:
    """A uvicorn server for the app (not started); ``port`` overrides TICKWIRE_API_PORT."""
    app = create_app(settings)
    config = uvicorn.Config(app, host=settings.api_host,
                            port=settings.api_port if port is None else port,
                            log_config=None, access_log=access_log, lifespan="on",
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S)
    server = uvicorn.Server(config)
    # Streams end on shutdown, so their connections close and the server exits without waiting them out.
    app.state.stopping = lambda: server.should_exit
    return server


def serve_forever(settings: ApiSettings) -> int:
    """``tickwire api``: serve until SIGINT/SIGTERM (uvicorn shuts down gracefully); 1 if it could not start."""
    if not settings.redis_url:
        print("error: REDIS_URL is not set: the API serves what the processors keep in Redis "
              "(example: redis://localhost:6379/0)", file=sys.stderr)
        return 2
    server = api_server(settings, access_log=settings.log_level.upper() == "DEBUG")
    asyncio.run(server.serve())
    return 0 if server.started else 1
