"""A user's configuration mistake is one line naming the variable, with an example, and exit 2 (issue 15 item 1)."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

from deploy.embedded.process import ManagedProcess
from deploy.embedded.readiness import free_port
from tests.helpers import eventually, tickwire_env
from tests.integration.tools_support import tickwire

pytestmark = pytest.mark.integration

REDIS_NO_SCHEME = ("error: REDIS_URL: 'localhost:6379' needs a scheme: redis://, rediss:// or unix:// "
                   "(example: redis://localhost:6379/0)")
COMMANDS = [["ingest"], ["processor"], ["api"], ["run"], ["tail", "quotes.raw"], ["replay"], ["diff", "live", "r1"],
            ["check"], ["status", "--once"], ["position", "set", "AAPL", "1", "2"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: args[0])
async def test_command_given_redis_url_without_scheme_prints_one_line_and_exits_2(args: list[str]) -> None:
    started = time.monotonic()

    result = await tickwire(*args, env=tickwire_env(REDIS_URL="localhost:6379"), timeout=30)

    assert (result.code, result.err.splitlines()) == (2, [REDIS_NO_SCHEME]), result.err
    assert time.monotonic() - started < 15


@pytest.mark.parametrize(("variable", "value", "line"), [
    ("TICKWIRE_SYMBOLS", "AAPL,9X", "error: TICKWIRE_SYMBOLS: invalid symbol '9X': expected 1-10 letters/digits "
                                    "starting with a letter (example: AAPL,MSFT,BRK.B)"),
    ("TICKWIRE_SYMBOLS", " , ", "error: TICKWIRE_SYMBOLS: name at least one symbol (example: AAPL,MSFT)"),
    ("KAFKA_BOOTSTRAP_SERVERS", "localhost", "error: KAFKA_BOOTSTRAP_SERVERS: 'localhost' is not host:port "
                                             "(example: localhost:9092)"),
    ("TICKWIRE_TOPIC_PARTITIONS", "four", "error: TICKWIRE_TOPIC_PARTITIONS: 'four': Input should be a valid "
                                          "integer, unable to parse string as an integer"),
])
async def test_tail_given_a_malformed_variable_names_it_with_an_example(variable: str, value: str, line: str) -> None:
    result = await tickwire("tail", "quotes.raw", env=tickwire_env(**{variable: value}), timeout=30)

    assert (result.code, result.err.splitlines()) == (2, [line]), result.err


@pytest.mark.parametrize("args", [["tail", "quotes.raw"], ["run"], ["check"]], ids=lambda args: args[0])
async def test_command_given_kafka_on_a_closed_port_says_so_in_one_line_within_seconds(args: list[str]) -> None:
    port = free_port()
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", REDIS_URL="redis://127.0.0.1:1/0")
    started = time.monotonic()

    result = await tickwire(*args, env=env, timeout=30)

    lines = result.err.splitlines()
    assert result.code == 2 and len(lines) == 1, result.err
    assert re.fullmatch(rf"error: cannot reach Kafka: KafkaConnectionError: Unable to bootstrap from "
                        rf"\[\('127\.0\.0\.1', {port}, .*\)\] \(check KAFKA_BOOTSTRAP_SERVERS, e\.g\. localhost:9092\)",
                        lines[0]), lines[0]
    assert time.monotonic() - started < 10


async def test_processor_given_kafka_on_a_closed_port_ends_with_one_error_line_within_seconds() -> None:
    """The processor logs its settings first (structured log lines), then the one error line, and exits 2."""
    port = free_port()
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}", TICKWIRE_PROCESSOR_METRICS_PORT="0")
    started = time.monotonic()

    result = await tickwire("processor", env=env, timeout=30)

    last = result.err.splitlines()[-1]
    assert result.code == 2 and last.startswith("error: cannot reach Kafka: KafkaConnectionError"), result.err
    assert "Traceback" not in result.err and time.monotonic() - started < 10


async def test_ingest_given_kafka_not_up_yet_says_it_is_waiting_for_it_while_it_retries(tmp_path: Path) -> None:
    port = free_port()
    ingest = ManagedProcess("ingest", [sys.executable, "-m", "tickwire", "ingest"], tmp_path / "ingest.log",
                            tickwire_env(KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{port}"))
    await ingest.start()
    try:
        async def retried_twice() -> bool:
            return ingest.log_path.read_text().count(f"waiting for Kafka at 127.0.0.1:{port}") >= 2

        await eventually(retried_twice, 30, "two 'waiting for Kafka' lines", ingest)
    finally:
        await ingest.stop()

    log = ingest.log_path.read_text()
    assert "Unable connect to" not in log  # aiokafka's per-attempt ERROR lines are folded into ours
    assert "Traceback" not in log


async def test_command_given_debug_shows_the_traceback_too() -> None:
    plain = await tickwire("tail", "quotes.raw", env=tickwire_env(REDIS_URL="localhost:6379"), timeout=30)
    flag = await tickwire("--debug", "tail", "quotes.raw", env=tickwire_env(REDIS_URL="localhost:6379"), timeout=30)
    level = await tickwire("tail", "quotes.raw", env=tickwire_env(REDIS_URL="localhost:6379",
                                                                  TICKWIRE_LOG_LEVEL="debug"), timeout=30)

    assert "Traceback" not in plain.err
    assert flag.code == level.code == 1
    assert all("Traceback" in r.err and "ValidationError" in r.err for r in (flag, level))
