"""The machine side of a benchmark: its matmul throughput, its host allocator.

Matmul reference.
A benchmark that reports a fraction of "what this machine can do" times a
matmul (`matmul_reference`: 4096 x 4096 float32 on CPU, 137 GFLOP; 8192 x 8192
bfloat16 on an accelerator, whose peak is bfloat16's) right before each repetition
of what it measures, so both see the same load on a shared machine, and
reports the median of the per-repetition ratios:

    reference = matmul_reference()              # this backend's
    flops = xla_flops(fn, *args)                # XLA:CPU's cost analysis
    compiled = jax.jit(fn).lower(*args).compile()
    stats = interleaved(lambda: run(compiled), flops, reps=3, reference=reference)
    stats["fraction"]                           # achieved / matmul GFLOP/s

Host memory: `reuse_host_memory` (`rationality_jax.run.runtime`, also used by
`rationality_jax.main`) re-executes the process with glibc keeping freed
memory, so XLA:CPU's multi-GB temporaries stop costing page faults
(docs/benchmarks.md); every benchmark takes it as ``--host-memory``
(`add_host_memory_flag`, then `apply_host_memory`).

FLOPs: `xla_flops` counts them on XLA:CPU whatever the backend;
`FlopCount` does the same on a thread, so that on an accelerator the
host-side count overlaps with the device's work (and on a CPU reads the
benchmark's own executable). MFU against
the vendor's figure: `datasheet_tflops(device_kind)`.

Used by `benchmarks/heatmaps.py`, `benchmarks/train.py`,
`benchmarks/evaluate.py` and `benchmarks/accelerator.py`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import concurrent.futures
import resource
import time

import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax.run.runtime import reuse_host_memory

MATMUL_SIZE = 4096


def _cpu_seconds() -> float:
  """User + system CPU seconds of this process so far (all threads)."""
  usage = resource.getrusage(resource.RUSAGE_SELF)
  return usage.ru_utime + usage.ru_stime


class Timing:
  """Wall and CPU seconds of one call."""

  def __init__(self, fn: Callable[[], object]):
    cpu, start = _cpu_seconds(), time.perf_counter()
    fn()
    self.wall = time.perf_counter() - start
    self.cpu = _cpu_seconds() - cpu


class MatmulReference:
  """A compiled ``a @ b`` of two [size, size] matrices (float32 by default).

  The product is written into a donated output buffer, the previous result,
  so timing it never pays for fresh output pages: it measures the cores, not
  the host allocator.
  """

  def __init__(self, size: int = MATMUL_SIZE, dtype=jnp.float32):
    rng = np.random.default_rng(0)
    self.a, self.b = (
      jax.device_put(rng.standard_normal((size, size)).astype(dtype))
      for _ in range(2)
    )
    self.out = jnp.zeros((size, size), dtype)
    self.flops = 2.0 * size**3
    self.product = (
      jax.jit(lambda out, a, b: a @ b, donate_argnums=0, keep_unused=True)
      .lower(self.out, self.a, self.b)
      .compile()
    )
    self.time()  # warm-up

  def time(self) -> Timing:
    """Wall and CPU seconds of one product."""

    def product():
      self.out = self.product(self.out, self.a, self.b)
      self.out.block_until_ready()

    return Timing(product)


def matmul_reference() -> MatmulReference:
  """The reference for this backend: 4096^2 float32 on CPU, 8192^2 bfloat16 on
  an accelerator (whose peak, and the MFU goals, are bfloat16's)."""
  if jax.default_backend() == "cpu":
    return MatmulReference()
  return MatmulReference(8192, jnp.bfloat16)


def xla_flops(fn: Callable, *args) -> float:
  """FLOPs of one call of ``fn(*args)``, from XLA:CPU's cost analysis.

  Compiled for the host's CPU from the arguments' shapes and dtypes, whatever
  backend the benchmark runs on, so the count is the model's and the same
  everywhere: a GPU executable's cost analysis leaves out the matmuls that
  became cuBLAS calls (ViT-B/16's 37 GFLOP heatmap counted 0.9 GFLOP on an
  H200), and the GPU plug-in has no analysis before compilation (it counted
  0). `fn` is the plain function or a jit of it without shardings (nested
  jits are inlined; give a step jitted with shardings unwrapped).
  """
  return _executable_flops(jax.jit(fn).lower(*_cpu_specs(args)).compile())


def _cpu_specs(args):
  """The arguments' shapes and dtypes, placed on the host CPU."""
  cpu = jax.sharding.SingleDeviceSharding(jax.devices("cpu")[0])
  return jax.tree.map(
    lambda x: jax.ShapeDtypeStruct(jnp.shape(x), x.dtype, sharding=cpu), args
  )


_BACKGROUND = concurrent.futures.ThreadPoolExecutor(
  max_workers=2, thread_name_prefix="xla_flops"
)


def _executable_flops(compiled) -> float:
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", 0.0)) if cost else 0.0


class FlopCount:
  """`xla_flops(fn, *args)`, taken where it costs least.

  On an accelerator the count (a compilation for the host CPU: seconds to a
  minute at ViT-B/16) starts at once on a background thread, so it overlaps
  with the device's own compilation and timing. On a CPU backend the
  benchmark's own executable is XLA:CPU's already: ``result(compiled)``
  reads its cost analysis instead of compiling the function a second time.
  The shapes are read here, so the arguments may be donated right after.

      count = FlopCount(step, state, batch)
      compiled = jax.jit(step, donate_argnums=0).lower(state, batch).compile()
      flops = count.result(compiled)   # or count.result()
  """

  def __init__(self, fn: Callable, *args):
    self._fn, self._specs = fn, _cpu_specs(args)
    self._future = None
    if jax.default_backend() != "cpu":
      self._future = _BACKGROUND.submit(xla_flops, fn, *self._specs)

  def result(self, compiled=None) -> float:
    """The FLOPs; `compiled`: the benchmark's executable of ``fn(*args)``
    (used on a CPU backend only)."""
    if self._future is not None:
      return self._future.result()
    if compiled is not None:
      return _executable_flops(compiled)
    return xla_flops(self._fn, *self._specs)


# Dense bfloat16 peaks from the vendors' datasheets, TFLOP/s per device
# (`jax.Device.device_kind` prefixes), for an MFU against the datasheet next
# to the one against the measured matmul. None: not listed (a CPU).
DATASHEET_BF16_TFLOPS = {
  "NVIDIA H100 PCIe": 756.0,
  "NVIDIA H100 NVL": 835.5,
  "NVIDIA H100": 989.4,  # SXM (H100 80GB HBM3)
  "NVIDIA H200": 989.4,
  "NVIDIA A100": 312.0,
  "NVIDIA L4": 121.0,
  "TPU v4": 275.0,
  "TPU v5 lite": 197.0,
  "TPU v5p": 459.0,
  "TPU v5": 459.0,
  "TPU v6 lite": 918.0,
}


def datasheet_tflops(device_kind: str) -> float | None:
  """The datasheet's dense bfloat16 TFLOP/s of `device_kind`, or None."""
  for prefix, tflops in DATASHEET_BF16_TFLOPS.items():
    if device_kind.startswith(prefix):
      return tflops
  return None


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
     'fraction' (median of the per-repetition ratios of achieved to matmul
     GFLOP/s, wall clock), 'cpu_fraction' (the same with CPU seconds, user +
     system of all threads: less sensitive to other processes on a shared
     machine; on an idle one it is >= the wall fraction, equal when both keep
     every core busy), 'others': {name: [seconds, ...]}}.
  """
  others = others or {}
  ours, matmuls = [], []
  other_seconds = {name: [] for name in others}
  for _ in range(reps):
    matmuls.append(reference.time())
    ours.append(Timing(run))
    for name, fn in others.items():
      other_seconds[name].append(Timing(fn).wall)

  def fraction(seconds, matmul_seconds):
    return float(
      np.median(
        [
          (flops / s) / (reference.flops / m)
          for s, m in zip(seconds, matmul_seconds)
        ]
      )
    )

  seconds = [t.wall for t in ours]
  matmul_seconds = [t.wall for t in matmuls]
  return {
    "seconds": seconds,
    "matmul_seconds": matmul_seconds,
    "median_s": float(np.median(seconds)),
    "gflops": flops / float(np.median(seconds)) / 1e9,
    "matmul_gflops": reference.flops / float(np.median(matmul_seconds)) / 1e9,
    "fraction": fraction(seconds, matmul_seconds),
    "cpu_fraction": fraction([t.cpu for t in ours], [t.cpu for t in matmuls]),
    "others": other_seconds,
  }


def add_host_memory_flag(parser: argparse.ArgumentParser) -> None:
  """``--host-memory {reuse,fresh}`` (default reuse) on a benchmark's parser."""
  parser.add_argument(
    "--host-memory",
    choices=("reuse", "fresh"),
    default="reuse",
    help="reuse: re-execute with glibc keeping freed memory (machine.py); "
    "fresh: the default allocator (every execution maps new pages)",
  )


def apply_host_memory(args: argparse.Namespace) -> None:
  """Re-executes the benchmark for ``--host-memory reuse`` (first thing)."""
  reuse_host_memory(args.host_memory)
