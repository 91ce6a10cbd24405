"""Benchmarks: each `bench_*.py` module has `main(argv) -> dict` that prints its table."""
