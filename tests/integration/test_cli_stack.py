"""Finding the running stack, stopping it in order, --help, and Debian's kcat on the broker (issue 15, issue 25)."""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from schemas.timestamps import now_ns
from schemas.topics import QUOTES_RAW, TopicSpec
from tests.helpers import eventually, tickwire_env, tickwire_run_process, unique_symbol
from tests.integration.tools_support import quote, tickwire
from tickwire.endpoints import ENDPOINTS_FILE
from tickwire.topic_admin import ensure_topics

pytestmark = pytest.mark.integration


def gone_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True,
                          check=True)
    return int(proc.stdout)


def write_endpoints_file(run_dir: Path, pid: int, bootstrap: str, redis_url: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / ENDPOINTS_FILE).write_bytes(orjson.dumps(
        {"pid": pid, "REDIS_URL": redis_url, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "api_url": None}))


@pytest.mark.parametrize("args", [["tail", "quotes.raw"], ["replay"], ["diff", "live", "r1"], ["check"],
                                  ["status", "--once"], ["position", "set", "AAPL", "1", "2"]],
                         ids=lambda args: args[0])
async def test_command_given_a_stale_endpoints_file_reports_it_and_does_not_use_it(args: list[str],
                                                                                 tmp_path: Path) -> None:
    pid = gone_pid()
    write_endpoints_file(tmp_path, pid, "127.0.0.1:9", "redis://127.0.0.1:9/0")

    result = await tickwire(*args, env=tickwire_env(TICKWIRE_RUN_DIR=str(tmp_path)), timeout=30)

    assert (result.code, result.err.splitlines()) == (2, [
        f"error: {tmp_path / ENDPOINTS_FILE} is stale: the `tickwire run` that wrote it (pid {pid}) is not running; "
        "start `make run`, or set KAFKA_BOOTSTRAP_SERVERS and REDIS_URL, or delete the file"]), result.err


@pytest.mark.parametrize(("args", "variable"), [(["tail", "quotes.raw"], "KAFKA_BOOTSTRAP_SERVERS"),
                                                (["diff", "live", "r1"], "REDIS_URL"),
                                                (["status", "--once"], "REDIS_URL")], ids=lambda a: a[0])
async def test_command_given_no_stack_and_no_variable_says_how_to_get_one(args: list[str], variable: str,
                                                                        tmp_path: Path) -> None:
    result = await tickwire(*args, env=tickwire_env(TICKWIRE_RUN_DIR=str(tmp_path)), timeout=30)

    example = "localhost:9092" if variable.startswith("KAFKA") else "redis://localhost:6379/0"
    assert (result.code, result.err.splitlines()) == (2, [
        f"error: {variable} is not set and no `tickwire run` is running here (no endpoints.json in TICKWIRE_RUN_DIR); "
        f"start `make run` in another terminal, or set it (example: {example})"]), result.err


async def test_tools_given_a_live_endpoints_file_find_the_stack_like_status_does(
    kafka_bootstrap: str, redis_url: str, tmp_path: Path
) -> None:
    write_endpoints_file(tmp_path, os.getpid(), kafka_bootstrap, redis_url)  # this test process: alive
    env = tickwire_env(TICKWIRE_RUN_DIR=str(tmp_path))
    symbol = unique_symbol("EP")

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(QUOTES_RAW.name, quote(symbol, 1.0, 1.1, now_ns()),
                                     key=symbol.encode())
    finally:
        await producer.stop()

    tail = await tickwire("tail", "quotes.raw", "--from-offset", "0", "--limit", "1", "--symbol", symbol,
                          "-o", "json", env=env)
    diff = await tickwire("diff", "live", f"r-{symbol}", "--symbol", symbol, env=env)  # reads Redis, finds no run
    published = await tickwire("position", "set", symbol, "3", "10.5", env=env)

    assert tail.code == 0 and orjson.loads(tail.out)["value"]["S"] == symbol, tail.err
    assert (diff.code, diff.err.strip()) == (2, f"no finished replay run 'r-{symbol}' in this Redis (expired, "
                                                "still running, or never run)"), diff.err
    assert published.code == 0 and f"published {symbol} qty=3" in published.out, published.err


async def test_run_given_ctrl_c_stops_in_dependency_order_without_errors_and_removes_its_endpoints(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    env = tickwire_env(TICKWIRE_RUN_DIR=str(run_dir), TICKWIRE_PROCESSOR_APP_ID=f"order-{unique_symbol()}")
    run = tickwire_run_process(tmp_path, env)
    await run.start()
    try:
        async def streaming() -> bool:
            return re.search(r"prices AAPL mid=\d", run.log_path.read_text()) is not None

        await eventually(streaming, 90, "a price line from `tickwire run`", run)
        recorded = orjson.loads((run_dir / ENDPOINTS_FILE).read_bytes())
        os.kill(run.pid, signal.SIGINT)  # type: ignore[arg-type]
        code = await asyncio.wait_for(run.proc.wait(), 30)  # type: ignore[union-attr]
    finally:
        await run.stop()

    output = run.log_path.read_text()
    stopping = re.findall(r"^tickwire: stopping (\w+)$", output, flags=re.MULTILINE)
    logs = {path.name: path.read_text() for path in (run_dir / "logs").glob("*.log")}
    assert code == 0, output
    assert recorded["pid"] == run.pid
    assert stopping == ["ingest", "processor", "api", "feed", "redis", "broker"], output
    assert not (run_dir / ENDPOINTS_FILE).exists()
    # Error-level lines only: a warning may carry an error= field (e.g. a metrics port another stack holds).
    errors = {name: [line for line in text.splitlines() if re.search(r"\[(error|critical) *\]|ERROR|Traceback", line)
                     and "uvicorn.error" not in line]  # uvicorn's logger is *named* uvicorn.error
              for name, text in logs.items()}
    assert all(not lines for lines in errors.values()), errors
    assert re.search(r"ingest stopped .*queue_left=0", logs["ingest.log"]), logs["ingest.log"][-2000:]


@pytest.mark.parametrize(("args", "expected"), [
    (["tail", "--help"], ["Usage: tickwire tail [OPTIONS] TOPIC", "KAFKA_BOOTSTRAP_SERVERS (unset):",
                          "TICKWIRE_REPLAY_TTL_SECONDS (604800):"]),
    (["position", "set", "--help"], ["Usage: tickwire position set [OPTIONS] SYMBOL QTY AVG_PRICE"]),
    (["run", "--help"], ["TICKWIRE_FEED_RATE (5.0):", "TICKWIRE_API_PORT (8004):",
                         "TICKWIRE_INGEST_QUEUE_SIZE (20000):"]),
    (["ingest", "--help"], ["TICKWIRE_RECONNECT_BASE_SECONDS (5.0):", "ALPACA_API_KEY or APCA_API_KEY_ID (unset):"]),
    (["api", "--help"], ["TICKWIRE_API_HOST (127.0.0.1):"]),
    (["--help"], ["Usage: tickwire [OPTIONS] COMMAND [ARGS]...", "--debug"]),
    (["feed", "serve", "--help"], ["Usage: tickwire feed serve [OPTIONS]"]),  # declared in alpaca_feed/
], ids=["tail", "position-set", "run", "ingest", "api", "top", "feed-serve"])
async def test_help_given_a_command_renders_click_style_and_lists_its_environment(args: list[str],
                                                                                 expected: list[str]) -> None:
    result = await tickwire(*args, env=tickwire_env(COLUMNS="200"), timeout=30)

    assert result.code == 0, result.err
    for text in expected:
        assert text in result.out, result.out
    assert not re.search(r"<(bool|str|int|float|list)", result.out), result.out
    usage = next(line for line in result.out.splitlines() if "Usage:" in line)
    assert "{" not in usage, usage  # arguments as TOPIC / [TOPIC], not {topic}
    assert not re.search(r"--help\s+\S+\s+Show", result.out), result.out  # no type next to --help


async def test_kcat_given_the_broker_lists_it_produces_and_consumes(kafka_bootstrap: str) -> None:
    if shutil.which("kcat") is None:
        pytest.skip("kcat is not installed (Debian package kcat; `make test` installs it as root)")
    topic = f"kcat-{uuid.uuid4().hex[:8]}"
    await ensure_topics(kafka_bootstrap, 1, [TopicSpec(topic, "symbol", bytes, "kcat test")])

    async def kcat(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return await asyncio.to_thread(subprocess.run, ["kcat", "-b", kafka_bootstrap, *args], input=stdin,
                                       capture_output=True, text=True, timeout=30, check=False)

    listed = await kcat("-L", "-t", "quotes.raw")
    produced = await kcat("-P", "-t", topic, "-K", ":", stdin="AAPL:hello\n")
    consumed = await kcat("-C", "-t", topic, "-o", "beginning", "-e", "-f", "%k=%s\n")

    assert listed.returncode == 0 and 'topic "quotes.raw" with' in listed.stdout, listed.stderr
    assert produced.returncode == 0, produced.stderr
    assert (consumed.returncode, consumed.stdout) == (0, "AAPL=hello\n"), consumed.stderr
