"""Benchmarks: `make bench` runs every `bench_*.py` here, each printing ratios against an anchor from the same run."""
