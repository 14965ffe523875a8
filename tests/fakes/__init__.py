"""Fakes for tests and benchmarks."""
