"""tickwire replay and diff against a real broker, Redis and a real price processor worker."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from consumers.tools.bounds import parse_offsets, parse_time
from consumers.tools.diff import diff
from consumers.tools.replay import ReplayError, ReplayRequest, replay
from consumers.tools.settings import ToolSettings
from schemas.timestamps import NS_PER_SECOND, now_ns
from schemas.topics import (
    ALL_TOPICS,
    DAILY_BARS_RAW,
    PNL,
    PNL_CHANNEL_PATTERN,
    POSITIONS,
    POSITIONS_REJECTED,
    PRICE_CHANNEL_PATTERN,
    PRICES,
    QUOTES_RAW,
    QUOTES_REJECTED,
    marks_topic,
    namespaced,
    pnl_key,
    pnl_total_key,
    position_key,
    positions_key,
    price_key,
    replay_namespace,
    replay_topic,
    symbol_stats_key,
)
from tests.helpers import eventually, processor_process, read_topic_until, tickwire_env, unique_symbol
from tests.integration.test_pnl_processor import daily_bar_value, position_value
from tests.integration.tools_support import (
    commit_offsets,
    end_offsets,
    mixed_quotes,
    offsets_arg,
    quote,
    redis_snapshot,
    start_group_at_end,
    tickwire,
    topics_high_water,
)

pytestmark = pytest.mark.integration


async def produce(bootstrap: str, records: list[tuple[str, bytes]], timestamps_ms: list[int] | None = None) -> None:
    """Send records in order (key = symbol), optionally with chosen record timestamps."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await producer.send(QUOTES_RAW.name, value, key=symbol.encode(),
                                    timestamp_ms=timestamps_ms[i] if timestamps_ms else None)
                for i, (symbol, value) in enumerate(records)]
        for future in sent:
            await future
    finally:
        await producer.stop()


async def test_replay_given_range_a_worker_processed_reproduces_its_redis_state_without_touching_live(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test that a replay of what a live worker consumed ends with byte-identical prices and equal counts,
    while no live key, channel or topic changes."""
    # Arrange: a recorded range with every kind of quote, processed by a real worker
    symbols = [unique_symbol("R") for _ in range(3)]
    stream = mixed_quotes(symbols, per_symbol=60, t0_ns=now_ns() - 30 * NS_PER_SECOND)
    before = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    await produce(kafka_bootstrap, stream.records)
    after = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    group = f"test-replay-live-{uuid.uuid4().hex[:8]}"
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, TICKWIRE_PROCESSOR_APP_ID=group)
    # The worker consumes exactly the recorded range (not the session's backlog), as the replay will.
    await start_group_at_end(kafka_bootstrap, group, [t.name for t in ALL_TOPICS if t.name != QUOTES_RAW.name])
    await commit_offsets(kafka_bootstrap, group, QUOTES_RAW.name, before)
    worker = processor_process(log_dir, env)
    await worker.start()

    async def all_counted() -> bool:
        for symbol in symbols:
            counts = await redis.hgetall(symbol_stats_key(symbol))
            if sum(int(v) for v in counts.values()) < stream.per_symbol(symbol):
                return False
        return True

    try:
        await eventually(all_counted, 90, "the live worker to process every recorded quote", worker)
    finally:
        await worker.stop()
    live_before = await redis_snapshot(redis)
    topics_before = await topics_high_water(kafka_bootstrap)
    run = f"t{uuid.uuid4().hex[:8]}"
    pubsub = redis.pubsub()
    await pubsub.psubscribe(PRICE_CHANNEL_PATTERN, namespaced(PRICE_CHANNEL_PATTERN, replay_namespace(run)))

    # Act
    replayed = await tickwire("replay", QUOTES_RAW.name, "--from-offset", offsets_arg(before), "--to-offset",
                              offsets_arg(after), "--symbol", ",".join(symbols), "--run-id", run, "--no-progress",
                              env=env)
    compared = await tickwire("diff", "live", run, env=env)

    # Assert: the same state, under the run's names only
    assert replayed.code == 0, replayed.err
    assert f"replayed {len(stream.records)} of " in replayed.out
    for symbol in symbols:
        live_price = await redis.get(price_key(symbol))
        assert live_price is not None
        assert await redis.get(namespaced(price_key(symbol), replay_namespace(run))) == live_price
        assert await redis.hgetall(namespaced(symbol_stats_key(symbol), replay_namespace(run))) == \
            await redis.hgetall(symbol_stats_key(symbol))
    assert compared.code == 0, compared.out + compared.err
    assert f"no differences in 3 symbols ({', '.join(sorted(symbols))})" in compared.out

    live_after = await redis_snapshot(redis)
    assert {k: v for k, v in live_after.items() if not k.startswith(replay_namespace(run).encode())} == live_before
    topics_after = await topics_high_water(kafka_bootstrap)
    assert {tp: o for tp, o in topics_after.items() if tp in topics_before} == topics_before
    run_topics = {tp.topic for tp in set(topics_after) - set(topics_before)}
    assert run_topics == {replay_topic(PRICES.name, run), replay_topic(QUOTES_REJECTED.name, run)}

    channels = set()
    # Everything was published before the replay exited, so it is all buffered: read until the buffer is empty.
    while (message := await pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "pmessage":
            channels.add(message["channel"].decode())
    await pubsub.aclose()
    assert channels and all(c.startswith(replay_namespace(run)) for c in channels), channels

    accepted = sum([int(await redis.hget(symbol_stats_key(s), "accepted") or 0) for s in symbols])
    run_prices = await read_topic_until(kafka_bootstrap, replay_topic(PRICES.name, run),
                                        lambda vs: len(vs) >= accepted, timeout=30)
    assert len(run_prices) == accepted and {p["symbol"] for p in run_prices} == set(symbols)


async def test_diff_given_runs_over_time_and_offset_ranges_finds_exactly_the_injected_differences(
    kafka_bootstrap: str, redis_url: str, redis: Redis
) -> None:
    """Test that two replays of one range agree, and diff names each symbol and field that was changed."""
    # Arrange: record timestamps 10 ms apart, after every record already on the broker (time ranges assume
    # roughly increasing record times per partition, as producers stamping "now" give)
    first, second = unique_symbol("D"), unique_symbol("D")
    t0_ms = now_ns() // 1_000_000 + 1
    records = [(symbol, quote(symbol, 50.0 + i / 100, 50.02 + i / 100, t0_ms * 1_000_000 + i * NS_PER_SECOND))
               for i in range(10) for symbol in (first, second)]
    stamps = [t0_ms + i * 10 for i in range(10) for _ in range(2)]
    before = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    await produce(kafka_bootstrap, records, stamps)
    after = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url)
    by_time, by_offset, shorter = (f"t{uuid.uuid4().hex[:8]}" for _ in range(3))
    symbols = f"{first},{second}"
    t_from, t_to = _rfc3339_ms(t0_ms), _rfc3339_ms(t0_ms + 100)

    settings = ToolSettings(kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url)

    def request(run_id: str, **bounds: object) -> ReplayRequest:
        return ReplayRequest(topic=QUOTES_RAW.name, run_id=run_id, symbols=frozenset({first, second}),
                             **{"start": None, "end": None, **bounds})  # type: ignore[arg-type]

    # Act: the command line once, the same functions in-process for the rest
    timed = await tickwire("replay", "--from-time", t_from, "--to-time", t_to, "-s", symbols, "--run-id", by_time,
                           "--no-progress", env=env)
    offsets = await replay(settings, request(by_offset, start=parse_offsets(offsets_arg(before)),
                                             end=parse_offsets(offsets_arg(after))))
    same = await diff(redis, by_time, by_offset)
    key = namespaced(price_key(first), replay_namespace(by_offset))
    injected = orjson.loads(await redis.get(key))
    original_mid, injected["mid"] = injected["mid"], "99.99"
    await redis.set(key, orjson.dumps(injected))
    changed = await tickwire("diff", by_time, by_offset, "-o", "json", env=env)
    cut = await replay(settings, request(shorter, start=parse_time(t_from), end=parse_time(_rfc3339_ms(t0_ms + 80))))
    cut_diff = await diff(redis, by_time, shorter, [second])
    paced = await replay(settings, request(f"t{uuid.uuid4().hex[:8]}", start=parse_time(t_from), end=parse_time(t_to),
                                           speed=0.1))  # 90 ms of recorded time, 10 times slower
    paced_diff = await diff(redis, by_time, paced.run_id)
    with pytest.raises(ReplayError, match="already has state"):
        await replay(settings, request(by_time, start=parse_time(t_from)))

    # Assert
    assert timed.code == 0, timed.err
    assert "replayed 20 of" in timed.out and offsets.records_replayed == 20 and cut.records_replayed == 16
    assert "(start: scan" in timed.out or "(start: broker time index" in timed.out
    if "(start: scan" in timed.out:  # the embedded broker's time index is approximate: the replay says so
        assert "by scanning" in timed.out
    assert same.differences == [] and same.symbols == sorted([first, second])
    assert changed.code == 1, changed.err
    assert orjson.loads(changed.out)["differences"] == [
        {"symbol": first, "field": "price.mid", "left": original_mid, "right": "99.99"}
    ]
    assert paced.records_replayed == 20 and paced.replay_seconds >= 0.9 and paced_diff.differences == []
    cut_fields = {d.field: (d.left, d.right) for d in cut_diff.differences}
    assert cut_diff.differing_symbols == [second]
    assert cut_fields["count.accepted"] == ("10", "8")
    assert cut_fields["price.timestamp"][0] > cut_fields["price.timestamp"][1]


def _rfc3339_ms(ms: int) -> str:
    from schemas.timestamps import format_ns

    return format_ns(ms * 1_000_000)


async def test_replay_given_offsets_of_one_partition_reads_only_that_range(
    kafka_bootstrap: str, redis_url: str, redis: Redis
) -> None:
    """Test that ``--from-offset P:A --to-offset P:B`` reads offsets A..B of partition P and nothing else."""
    # Arrange: quotes of several symbols, so that more than one partition has fresh records
    symbols = [unique_symbol("P") for _ in range(8)]
    t0 = now_ns() - 10 * NS_PER_SECOND
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        sent = [await (await producer.send(QUOTES_RAW.name, quote(s, 10.0 + i, 10.02 + i, t0 + i), key=s.encode()))
                for i in range(5) for s in symbols]
    finally:
        await producer.stop()
    by_partition: dict[int, list[int]] = {}
    symbol_partition = {}
    for s, meta in zip([s for _ in range(5) for s in symbols], sent, strict=True):
        by_partition.setdefault(meta.partition, []).append(meta.offset)
        symbol_partition[s] = meta.partition
    assert len(by_partition) > 1, "all symbols hashed to one partition: the test needs another"
    partition = max(by_partition, key=lambda p: len(by_partition[p]))
    first, last = min(by_partition[partition]), max(by_partition[partition])
    inside = sorted(s for s, p in symbol_partition.items() if p == partition)
    run = f"t{uuid.uuid4().hex[:8]}"
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url)

    # Act
    replayed = await tickwire("replay", "--from-offset", f"{partition}:{first}", "--to-offset",
                              f"{partition}:{last + 1}", "--run-id", run, "--no-progress", env=env)

    # Assert: one partition listed, exactly its span read, and only its symbols have run state
    assert replayed.code == 0, replayed.err
    assert f"of {last + 1 - first} records of {QUOTES_RAW.name}" in replayed.out, replayed.out
    assert f"  partition {partition}: offsets {first}..{last + 1} (start: offset, end: offset)" in replayed.out
    assert replayed.out.count("  partition ") == 1, replayed.out
    namespace = replay_namespace(run)
    for symbol in symbols:
        stored = await redis.get(namespaced(price_key(symbol), namespace))
        assert (stored is not None) == (symbol in inside), symbol


async def test_diff_live_given_live_moved_past_the_runs_cut_says_by_how_much_and_exits_3(
    kafka_bootstrap: str, redis_url: str, redis: Redis
) -> None:
    """Test that ``diff live R`` counts the records live read past R's cut instead of reporting them as
    differences (exit 3), and still exits 1 for a difference in a symbol that did not move."""
    # Arrange: A's quotes all before the cut, B's on both sides of it; "live" holds the state of the whole range
    still, moving = unique_symbol("A"), unique_symbol("B")
    t0 = now_ns() - 20 * NS_PER_SECOND
    before = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    await produce(kafka_bootstrap, [(s, quote(s, 20.0 + i, 20.02 + i, t0 + i * 1_000_000))
                                    for i in range(3) for s in (still, moving)])
    cut = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    await produce(kafka_bootstrap, [(moving, quote(moving, 30.0 + i, 30.02 + i, t0 + (10 + i) * 1_000_000))
                                    for i in range(4)])
    after = await end_offsets(kafka_bootstrap, QUOTES_RAW.name)
    settings = ToolSettings(kafka_bootstrap_servers=kafka_bootstrap, redis_url=redis_url)
    at_cut, whole = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    for run_id, end in ((at_cut, cut), (whole, after)):
        await replay(settings, ReplayRequest(topic=QUOTES_RAW.name, start=parse_offsets(offsets_arg(before)),
                                             end=parse_offsets(offsets_arg(end)), run_id=run_id,
                                             symbols=frozenset({still, moving})))
    for symbol in (still, moving):  # live = a pipeline that read to the end, past the first run's cut
        await redis.set(price_key(symbol), await redis.get(namespaced(price_key(symbol), replay_namespace(whole))))
        await redis.hset(symbol_stats_key(symbol), mapping=await redis.hgetall(
            namespaced(symbol_stats_key(symbol), replay_namespace(whole))))
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url)

    # Act
    moved = await tickwire("diff", "live", at_cut, "--settle", "0", env=env)
    moved_json = await tickwire("diff", "live", at_cut, "--settle", "0", "-o", "json", env=env)
    bent = orjson.loads(await redis.get(price_key(still)))
    bent["mid"] = "0.01"
    await redis.set(price_key(still), orjson.dumps(bent))
    real = await tickwire("diff", "live", at_cut, "--settle", "0", env=env)

    # Assert
    partition = next(p for p in after if after[p] > cut.get(p, 0))
    assert moved.code == 3, moved.out + moved.err
    assert (f"{moving}: live moved past the run's cut by 4 record(s) "
            f"({QUOTES_RAW.name}[{partition}] after offset {cut[partition]}: 4)") in moved.out
    assert "no real difference (exit 3)" in moved.out
    assert orjson.loads(moved_json.out)["live_moved"] == {
        moving: {"records": 4, "after_cut": {str(partition): {"cut": cut[partition], "records": 4}}}}
    assert real.code == 1, real.out + real.err
    assert f"real differences in 1 symbol(s): {still}" in real.out


async def test_replay_given_positions_a_live_pnl_stage_valued_reproduces_its_pnl_and_diff_finds_a_change(
    kafka_bootstrap: str, redis_url: str, redis: Redis, log_dir: Path
) -> None:
    """Test that ``tickwire replay positions`` re-runs the P&L stage over positions, the price stage's marks and
    the closes into the run's namespace: each position's P&L and the account's total as live has them, no live
    name touched, ``diff live R`` equal; a position changed since is a difference of it and of the total."""
    # Arrange: a live processor (both stages) values a long, a short and a position marked at its close
    account = f"acct-{uuid.uuid4().hex[:8]}"
    long_sym, short_sym, closing_sym = unique_symbol("PL"), unique_symbol("PS"), unique_symbol("PC")
    symbols = ",".join([long_sym, short_sym, closing_sym])
    group = f"test-replay-pnl-{uuid.uuid4().hex[:8]}"
    env = tickwire_env(KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap, REDIS_URL=redis_url, TICKWIRE_PROCESSOR_APP_ID=group)
    await start_group_at_end(kafka_bootstrap, group, [t.name for t in ALL_TOPICS])
    t0 = now_ns() - 5 * NS_PER_SECOND
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()

    async def send(topic: str, key: str, value: bytes) -> None:
        await producer.send_and_wait(topic, value, key=key.encode())

    async def position(symbol: str, qty: str, avg: str) -> None:
        await send(POSITIONS.name, position_key(account, symbol), position_value(account, symbol, qty, avg))

    worker = processor_process(log_dir, env)
    await worker.start()
    expected = {long_sym: "200.00", short_sym: "37.25", closing_sym: "5.00"}
    try:
        for i, (bid, ask) in enumerate([(150.99, 151.01), (151.49, 151.51), (151.99, 152.01)]):
            await send(QUOTES_RAW.name, long_sym, quote(long_sym, bid, ask, t0 + i * 1_000_000))
        await send(QUOTES_RAW.name, short_sym, quote(short_sym, 99.25, 99.26, t0))
        await send(DAILY_BARS_RAW.name, closing_sym, daily_bar_value(closing_sym, 20.0, t0 - 86_400 * NS_PER_SECOND))
        for symbol, qty, avg in ((long_sym, "100", "150"), (short_sym, "-50", "100"), (closing_sym, "10", "19.5")):
            await position(symbol, qty, avg)

        async def valued() -> bool:
            stored = {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(pnl_key(account))).items()}
            return {s: p.get("unrealized_pnl") for s, p in stored.items()} == expected

        await eventually(valued, 90, "the live P&L stage to value every position at its last mark", worker)
    finally:
        await worker.stop()
    live_before = await redis_snapshot(redis)
    topics_before = await topics_high_water(kafka_bootstrap)
    run, changed = f"t{uuid.uuid4().hex[:8]}", f"t{uuid.uuid4().hex[:8]}"
    namespace = replay_namespace(run)
    pubsub = redis.pubsub()
    await pubsub.psubscribe(PNL_CHANNEL_PATTERN, namespaced(PNL_CHANNEL_PATTERN, namespace))

    # Act: replay what live valued, compare; then a position changes, and a run with it is compared
    replayed = await tickwire("replay", POSITIONS.name, "--symbol", symbols, "--run-id", run, "--no-progress", env=env)
    compared = await tickwire("diff", "live", run, env=env)
    live_after = await redis_snapshot(redis)
    topics_after = await topics_high_water(kafka_bootstrap)
    live_pnl, run_pnl, live_positions, run_positions = [
        {k: {f: v for f, v in orjson.loads(raw).items() if f != "updated_at"}  # stamped when valued or validated
         for k, raw in (await redis.hgetall(namespaced(key(account), ns))).items()}
        for key in (pnl_key, positions_key) for ns in ("", namespace)]
    live_total, run_total = [orjson.loads(await redis.get(namespaced(pnl_total_key(account), ns)) or b"{}")
                             for ns in ("", namespace)]
    try:
        await position(short_sym, "-60", "100")
    finally:
        await producer.stop()
    second = await tickwire("replay", POSITIONS.name, "-s", symbols, "--run-id", changed, "--no-progress", env=env)
    runs_differ = await tickwire("diff", run, changed, "-o", "json", env=env)
    bent = orjson.loads(await redis.hget(namespaced(pnl_key(account), namespace), long_sym) or b"{}")
    bent["unrealized_pnl"] = "250.00"
    await redis.hset(namespaced(pnl_key(account), namespace), long_sym, orjson.dumps(bent))
    live_differs = await tickwire("diff", "live", run, "--settle", "0", "-o", "json", env=env)

    # Assert: the same P&L under the run's names only
    assert replayed.code == 0, replayed.out + replayed.err
    assert f"records of {POSITIONS.name}, {marks_topic(group)}, {DAILY_BARS_RAW.name}" in replayed.out, replayed.out
    assert "(stages: pnl)" in replayed.out and "1 account(s)" in replayed.out
    assert compared.code == 0, compared.out + compared.err
    assert "no differences in 3 positions in 1 account(s)" in compared.out, compared.out
    assert "symbols" not in compared.out  # a P&L run left no price state to compare
    assert run_pnl == live_pnl and set(live_pnl) == {s.encode() for s in symbols.split(",")}
    assert run_positions == live_positions and len(live_positions) == 3
    assert (run_total["total_unrealized"], run_total["positions"]) == ("242.25", 3) == (
        live_total["total_unrealized"], live_total["positions"])

    assert {k: v for k, v in live_after.items() if not k.startswith(namespace.encode())} == live_before
    assert {tp: o for tp, o in topics_after.items() if tp in topics_before} == topics_before
    assert {tp.topic for tp in set(topics_after) - set(topics_before)} == {
        replay_topic(PNL.name, run), replay_topic(POSITIONS_REJECTED.name, run)}
    channels = set()
    while (message := await pubsub.get_message(timeout=0.2)) is not None:
        if message["type"] == "pmessage":
            channels.add(message["channel"].decode())
    await pubsub.aclose()
    assert channels and all(c.startswith(namespace) for c in channels), channels

    assert second.code == 0, second.out + second.err
    assert runs_differ.code == 1, runs_differ.out + runs_differ.err
    assert orjson.loads(runs_differ.out)["differences"] == [
        {"symbol": f"{account}:{short_sym}", "field": "pnl.qty", "left": "-50", "right": "-60"},
        {"symbol": f"{account}:{short_sym}", "field": "pnl.unrealized_pnl", "left": "37.25", "right": "44.70"},
        {"symbol": account, "field": "pnl_total.total_unrealized", "left": "242.25", "right": "249.70"},
    ]
    assert live_differs.code == 1, live_differs.out + live_differs.err
    assert orjson.loads(live_differs.out)["differences"] == [
        {"symbol": f"{account}:{long_sym}", "field": "pnl.unrealized_pnl", "left": "200.00", "right": "250.00"},
        {"symbol": account, "field": "pnl_total.total_unrealized", "left": "242.25", "right": "292.25"},
    ]
