"""The experiment driver: from a run config to a run directory.

`rationality_jax.main` parses the command line and calls `run`-package
functions; the libraries (`models`, `data`, `explain`, `metrics`, `methods`)
never import this package (tests/test_architecture.py checks it).
"""
