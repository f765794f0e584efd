"""The rules of the market-data domain, free of I/O: quote validation, pricing, positions and valuation.

Everything here is a pure function or a small value type over ``schemas``; processors, the API and the
tools apply the same rules by importing them from here. The stages' batch handlers live here too
(``price_handler``, ``price_batch``, ``mark_cadence``; ``pnl_join``, ``pnl_conflation``,
``subscription_keeper``) with the payloads they serialise: records in, results out, no clients. The
processors drive them with Kafka and Redis, ``tickwire replay`` drives the same ones into a run.
"""
