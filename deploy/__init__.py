"""Running tickwire: the embedded default stack (broker, Redis, local Alpaca feed) and deployment files."""
