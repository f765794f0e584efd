"""FastAPI dependencies: the app's context, the bearer-token check, and validated path/query values."""

from __future__ import annotations

import hmac
from typing import Annotated, cast

from fastapi import Depends, HTTPException, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from consumers.api.context import ApiContext
from consumers.api.errors import invalid_parameter
from domain.positions import normalize_account
from schemas.symbols import normalize_symbol
from schemas.topics import DEFAULT_ACCOUNT

_bearer = HTTPBearer(auto_error=False, description="TICKWIRE_API_TOKEN, when the service has one")


def get_context(request: Request) -> ApiContext:
    """The running app's clients and settings."""
    return cast(ApiContext, request.app.state.context)


Context = Annotated[ApiContext, Depends(get_context)]


def require_token(context: Context,
                  credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> None:
    """Mutating calls need ``Authorization: Bearer <TICKWIRE_API_TOKEN>`` when a token is configured."""
    token = context.settings.api_token
    if token is None:
        return
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise HTTPException(401, "missing bearer token: send 'Authorization: Bearer <token>'", challenge)
    # Constant-time comparison: the time taken must not reveal how much of the token matched.
    if not hmac.compare_digest(credentials.credentials.encode(), token.get_secret_value().encode()):
        raise HTTPException(401, "invalid bearer token", challenge)


def symbol_path(symbol: Annotated[str, Path(description="ticker symbol, e.g. AAPL or BRK.B",
                                             examples=["AAPL"])]) -> str:
    """The ``{symbol}`` path parameter, normalised (422 saying what is wrong otherwise)."""
    try:
        return normalize_symbol(symbol)
    except ValueError as exc:
        raise invalid_parameter("path", "symbol", str(exc)) from None


def account_query(account: Annotated[str, Query(description="account id", examples=[DEFAULT_ACCOUNT])]
                  = DEFAULT_ACCOUNT) -> str:
    """The ``account`` query parameter (default ``default``)."""
    try:
        return normalize_account(account)
    except ValueError as exc:
        raise invalid_parameter("query", "account", str(exc)) from None


Symbol = Annotated[str, Depends(symbol_path)]
Account = Annotated[str, Depends(account_query)]
Authorized = Depends(require_token)
