"""The machine's float32 matmul throughput, timed in the same run as a benchmark.

A benchmark that reports a fraction of "what this machine can do" times a
4096 x 4096 float32 matmul (jitted, 137 GFLOP) right before each repetition
of what it measures, so both see the same load on a shared machine, and
reports the median of the per-repetition ratios:

    reference = MatmulReference()
    flops = xla_flops(compiled)                 # XLA's cost analysis
    stats = interleaved(lambda: run(compiled), flops, reps=3, reference=reference)
    stats["fraction"]                           # achieved / matmul GFLOP/s

Used by `benchmarks/heatmaps.py` and `benchmarks/train.py`.
"""

from __future__ import annotations

from collections.abc import Callable
import time

import jax
import jax.numpy as jnp
import numpy as np

MATMUL_SIZE = 4096


class MatmulReference:
  """A compiled ``a @ b`` of two [size, size] float32 matrices."""

  def __init__(self, size: int = MATMUL_SIZE):
    rng = np.random.default_rng(0)
    self.a, self.b = (
      jax.device_put(rng.standard_normal((size, size), np.float32))
      for _ in range(2)
    )
    self.flops = 2.0 * size**3
    self.product = jax.jit(jnp.matmul).lower(self.a, self.b).compile()
    self.seconds()  # warm-up

  def seconds(self) -> float:
    """Wall seconds of one product."""
    start = time.perf_counter()
    self.product(self.a, self.b).block_until_ready()
    return time.perf_counter() - start


def xla_flops(compiled) -> float:
  """FLOPs of one call of a compiled function, from XLA's cost analysis."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0)) if cost else 0.0


def _seconds(fn: Callable[[], object]) -> float:
  start = time.perf_counter()
  fn()
  return time.perf_counter() - start


def interleaved(
  run: Callable[[], object],
  flops: float,
  reps: int,
  reference: MatmulReference,
  others: dict[str, Callable[[], object]] | None = None,
) -> dict:
  """Times `run` `reps` times, each right after one reference matmul.

  Args:
    run: one call of the measured function (blocks until done).
    flops: FLOPs of one call (`xla_flops`).
    reps: repetitions.
    reference: the matmul timed before each repetition.
    others: more contenders (e.g. a PyTorch reference), each timed once per
      repetition after `run`.

  Returns:
    {'seconds': [...], 'matmul_seconds': [...], 'median_s',
     'gflops' (median achieved GFLOP/s), 'matmul_gflops' (median),
     'fraction' (median of the per-repetition ratios achieved / matmul),
     'others': {name: [seconds, ...]}}.
  """
  others = others or {}
  seconds, matmul_seconds = [], []
  other_seconds = {name: [] for name in others}
  for _ in range(reps):
    matmul_seconds.append(reference.seconds())
    seconds.append(_seconds(run))
    for name, fn in others.items():
      other_seconds[name].append(_seconds(fn))
  ratios = [
    (flops / s) / (reference.flops / m) for s, m in zip(seconds, matmul_seconds)
  ]
  return {
    "seconds": seconds,
    "matmul_seconds": matmul_seconds,
    "median_s": float(np.median(seconds)),
    "gflops": flops / float(np.median(seconds)) / 1e9,
    "matmul_gflops": reference.flops / float(np.median(matmul_seconds)) / 1e9,
    "fraction": float(np.median(ratios)),
    "others": other_seconds,
  }
