"""The stream runtime: what runs a stage, with no business logic in it.

- :mod:`~tickwire.runtime.member`: the consumer-group member (natural batching, the commit rule, rebalances);
- :mod:`~tickwire.runtime.outputs`: a stage's Kafka outputs, batched and confirmed before each commit;
- :mod:`~tickwire.runtime.table`: a state table with its compacted changelog, and its restore
  (:mod:`~tickwire.runtime.restore` reads partitions back);
- :mod:`~tickwire.runtime.timers`: the hold timer and the sidecars beside a loop;
- :mod:`~tickwire.runtime.progress`: a member's position per partition, for ``/health`` and the lag gauge;
- :mod:`~tickwire.runtime.redis_script`: a Lua projection queued in pipelines;
- :mod:`~tickwire.runtime.stage` and :mod:`~tickwire.runtime.process`: the base of a stage's I/O side and
  the process that runs stages;
- :mod:`~tickwire.runtime.replay`: what a replay run gives a stage to write into (its namespace and topics).

It lives in ``tickwire/`` (the shared layer under the services) rather than in ``processors/``: the processors
run stages on it, and ``tickwire replay`` (in ``consumers/``, a sibling the processors may not be imported from
but by its one documented exception) drives the same stages through the same interfaces. It knows no topic of
a stage, no price and no position: the stages (``processors/registry.py``) say what to read, hold and write.
"""
