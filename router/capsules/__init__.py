"""Benchmark capsules: measured quality per model, fed into selection; gates on promotions; regressions."""

from router.capsules.capsule import Capsule, CapsuleError
from router.capsules.runner import CapsuleRunner, RunError, RunReport
from router.capsules.service import Benchmarks, BenchmarkSettings

__all__ = ["BenchmarkSettings", "Benchmarks", "Capsule", "CapsuleError", "CapsuleRunner", "RunError", "RunReport"]
