"""Error responses: ``{"detail": "<one line saying what is wrong>"}`` with a 4xx or 503; a 422 adds ``errors``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import cast

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tickwire.errors import TickwireError

log = structlog.get_logger(__name__)

MAX_BODY_BYTES = 64 * 1024
FASTAPI_UNPARSABLE_BODY = "There was an error parsing the body"  # FastAPI's 400 for an undecodable body


class ServiceUnavailable(TickwireError):
    """A backing service (Redis, the broker) cannot be used right now; answered with 503."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def one_line(text: object, limit: int = 200) -> str:
    """An error's text squeezed onto one short line (for 503 reasons and logs)."""
    flat = " ".join(str(text).split()) or type(text).__name__
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe_validation_errors(errors: list[dict[str, object]]) -> str:
    """Pydantic/FastAPI errors as one readable line: ``symbols.0: invalid symbol '$$$': ...``."""
    parts = []
    for error in errors:
        loc = [str(p) for p in cast(Iterable[object], error.get("loc", ())) if p not in ("body",)]
        message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        if error.get("type") == "missing":
            message = "field required"
        elif error.get("type") == "json_invalid":
            context = cast(dict[str, object], error.get("ctx", {}))
            message = f"request body is not valid JSON ({one_line(context.get('error', ''))})"
            loc = []  # the position in the text, not a field
        where = ".".join(loc[1:] if loc and loc[0] in ("path", "query", "header") else loc)
        parts.append(f"{where}: {message}" if where else message)
    return "; ".join(parts) or "invalid request"


def invalid_parameter(where: str, name: str, message: str) -> RequestValidationError:
    """A 422 for a path/query value checked in code, answered in the same shape as pydantic's own."""
    return RequestValidationError([{"loc": (where, name), "msg": message, "type": "value_error"}])


async def _validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [dict(e) for e in exc.errors()]
    body = {"detail": describe_validation_errors(errors),
            "errors": [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
                        "type": str(e.get("type", ""))} for e in errors]}
    return JSONResponse(body, status_code=422)


async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 413:
        return body_too_large()
    if exc.status_code == 400 and exc.detail == FASTAPI_UNPARSABLE_BODY:
        # Bytes that are not even text (not UTF-8): the same 422 as any other body that is not JSON.
        message = "request body is not valid JSON (not UTF-8 text)"
        return JSONResponse({"detail": message, "errors": [{"loc": ["body"], "msg": message, "type": "json_invalid"}]},
                            status_code=422)
    return JSONResponse({"detail": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _service_unavailable(_: Request, exc: ServiceUnavailable) -> JSONResponse:
    return JSONResponse({"detail": exc.reason}, status_code=503)


async def _redis_error(request: Request, exc: RedisError) -> JSONResponse:
    log.warning("redis unavailable", path=request.url.path, error=one_line(exc))
    return JSONResponse({"detail": f"redis unavailable: {one_line(exc)}"}, status_code=503)


def body_too_large() -> JSONResponse:
    """The 413 answer."""
    return JSONResponse({"detail": f"request body too large: at most {MAX_BODY_BYTES} bytes"}, status_code=413)


class BodyLimitMiddleware:
    """413 (JSON, via the app's handlers) for bodies over MAX_BODY_BYTES, declared or streamed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
        if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
            await body_too_large()(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > MAX_BODY_BYTES:
                    raise StarletteHTTPException(413)
            return message

        await self.app(scope, counting_receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn validation failures into 422/413 and outages into 503."""
    app.add_exception_handler(RequestValidationError, _validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _http_error)  # type: ignore[arg-type]
    app.add_exception_handler(ServiceUnavailable, _service_unavailable)  # type: ignore[arg-type]
    app.add_exception_handler(RedisError, _redis_error)  # type: ignore[arg-type]
