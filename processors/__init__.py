"""Faust stream processors: validate raw quotes, keep the latest price, project it into Redis."""
