"""tickwire: real-time market data and P&L on Kafka and Redis."""

__version__ = "0.1.0"
