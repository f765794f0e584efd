"""One line and exit 2 for the mistakes a user makes: bad settings, unreachable servers, tickwire's own errors.

Every ``tickwire`` command runs inside :func:`reported_errors` (or is wrapped by :func:`one_line_errors`);
a traceback appears only with ``--debug`` or ``TICKWIRE_LOG_LEVEL=debug``.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError

from tickwire.errors import TickwireError

P = ParamSpec("P")
R = TypeVar("R")

EXIT_USAGE = 2  # what click uses for a bad command line: a bad environment is the same kind of mistake
_DEBUG_FLAG = "TICKWIRE_DEBUG_TRACEBACKS"  # set by `tickwire --debug` so child processes show tracebacks too


def debug_enabled() -> bool:
    """True with ``--debug`` or ``TICKWIRE_LOG_LEVEL=debug`` (read raw: the settings may be what is broken)."""
    return os.environ.get(_DEBUG_FLAG) == "1" or os.environ.get("TICKWIRE_LOG_LEVEL", "").strip().upper() == "DEBUG"


def enable_debug() -> None:
    """Show tracebacks from now on, in this process and the ones it starts (``tickwire --debug``)."""
    os.environ[_DEBUG_FLAG] = "1"


def validation_lines(exc: ValidationError) -> list[str]:
    """One ``VARIABLE: what is wrong`` line per invalid setting (the variable is the field's alias)."""
    lines = []
    for error in exc.errors(include_url=False):
        variable = ".".join(str(part) for part in error["loc"]) or exc.title
        message = str(error["msg"]).removeprefix("Value error, ")
        given = error.get("input")
        if error["type"] != "value_error" and isinstance(given, str):
            message = f"{given!r}: {message}"  # pydantic's own messages do not repeat the value
        lines.append(f"{variable}: {message}")
    return lines


def error_line(exc: BaseException) -> str | None:
    """The one line a user sees for ``exc``, or None when it is a bug (and deserves its traceback)."""
    if isinstance(exc, ValidationError):
        return "error: " + "; ".join(validation_lines(exc))
    if isinstance(exc, TickwireError):
        return f"error: {exc}"
    from aiokafka.errors import KafkaConnectionError
    from redis.exceptions import ConnectionError as RedisConnectionError

    if isinstance(exc, KafkaConnectionError):
        return f"error: cannot reach Kafka: {exc} (check KAFKA_BOOTSTRAP_SERVERS, e.g. localhost:9092)"
    if isinstance(exc, RedisConnectionError):
        return f"error: cannot reach Redis: {exc} (check REDIS_URL, e.g. redis://localhost:6379/0)"
    if isinstance(exc, ConnectionError):
        return f"error: {exc}"
    return None


@contextmanager
def reported_errors() -> Iterator[None]:
    """Turn a user's mistake raised inside into one line on stderr and exit 2; a bug keeps its traceback."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # every error is classified; one that is not a mistake is re-raised
        line = error_line(exc)
        if line is None or debug_enabled():
            raise
        print(line, file=sys.stderr, flush=True)
        raise SystemExit(EXIT_USAGE) from None


def one_line_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Decorator form of :func:`reported_errors`, for a command function (e.g. the lead's ``processor``)."""
    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with reported_errors():
            return command(*args, **kwargs)
    return wrapper


def load_settings(settings_class: type[Any]) -> Any:
    """``settings_class()``, or one line naming the bad variable and exit 2 (``--debug``: the traceback)."""
    with reported_errors():
        return settings_class()
