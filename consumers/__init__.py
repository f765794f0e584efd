"""Consumers of tickwire's outputs: Redis price readers, monitors, and (later) the API service."""
