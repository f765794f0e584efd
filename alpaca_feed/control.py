"""``POST /_control/faults/{name}``: trigger a fault over HTTP (e.g. with curl while ``make run`` runs).

The JSON body holds the fault's arguments (``{}`` or no body for none); the reply is
``{"fault": name, "result": …}``, or ``{"code", "message"}`` with status 400 for unknown faults or
bad arguments. ``GET /_control/faults`` lists the fault names.
"""

from __future__ import annotations

import logging

import orjson
from aiohttp import web

from alpaca_feed.faults import FAULT_NAMES, FaultError, FeedFaults

log = logging.getLogger(__name__)


def _json(body: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def add_control_routes(app: web.Application, faults: FeedFaults) -> None:
    """Register the fault control endpoint on ``app``."""

    async def trigger(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        raw = await request.read()
        try:
            arguments = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            return _json({"code": 400, "message": f"body is not JSON: {exc}"}, status=400)
        if not isinstance(arguments, dict):
            return _json({"code": 400, "message": "body must be a JSON object of arguments"}, status=400)
        try:
            result = await faults.apply(name, arguments)
        except (FaultError, ValueError) as exc:
            log.warning("control: refused fault %s %s: %s", name, arguments, exc)
            return _json({"code": 400, "message": str(exc)}, status=400)
        log.info("control: fault %s %s", name, arguments)
        return _json({"fault": name, "result": result})

    async def names(request: web.Request) -> web.Response:
        return _json({"faults": list(FAULT_NAMES)})

    app.router.add_post("/_control/faults/{name}", trigger)
    app.router.add_get("/_control/faults", names)
