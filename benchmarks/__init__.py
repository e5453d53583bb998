"""Benchmarks against the tools users would pick instead, run by hand, not in CI.

``python -m benchmarks`` runs them and writes the figures into BENCHMARKS.md; see
``benchmarks.run``. PyOD comes with the ``bench`` extra: ``pip install -e '.[bench]'``.
"""
