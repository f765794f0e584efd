"""Ingest: Alpaca market-data stream (alpaca-py) -> raw Kafka topics."""
