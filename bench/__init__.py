"""Benchmarks for cacheinspect against a real registry behind a latency proxy: ``python -m bench``."""
