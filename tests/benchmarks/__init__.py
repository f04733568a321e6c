"""Benchmarks at city scale (issue 8): ``make bench`` or ``python -m tests.benchmarks [--quick]``.

The ``bench_*.py`` modules are not collected by pytest; ``test_harness_smoke.py`` runs them all
at a tiny scale so the harness cannot rot.
"""
