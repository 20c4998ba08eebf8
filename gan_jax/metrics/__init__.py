"""Metrics, one module each: pure functions of arrays."""
