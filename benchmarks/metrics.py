r"""RMA throughput: ours (jitted JAX) vs a plain numpy einsum, and a memory copy.

    python benchmarks/metrics.py [--n 5000] [--size 224] [--repeats 5]

Computes RMA for N heatmaps [N, S, S] float32 against masks [N, S, S] uint8.
Prints one table: median seconds, heatmaps/s, and effective bandwidth (bytes of
input read / time), next to the time numpy takes to copy the same bytes, so
"within 2x of a plain memory copy" can be read off directly.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from rationality_jax import metrics


def _median_seconds(fn, repeats: int) -> float:
  fn()  # warm-up (and compilation for the jitted one)
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=5000)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--repeats", type=int, default=5)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  shape = (args.n, args.size, args.size)
  heatmaps = rng.random(shape, dtype=np.float32)
  masks = (rng.random(shape, dtype=np.float32) < 0.3).astype(np.uint8)
  masks_f32 = masks.astype(np.float32)  # numpy's einsum needs one dtype
  input_bytes = heatmaps.nbytes + masks.nbytes

  heatmaps_dev = jax.device_put(heatmaps)
  masks_dev = jax.device_put(masks)
  rma_jit = jax.jit(metrics.rma)

  def ours():
    return rma_jit(heatmaps_dev, masks_dev).block_until_ready()

  def numpy_einsum():
    return np.einsum("nhw,nhw->n", heatmaps, masks_f32) / heatmaps.sum(
      axis=(1, 2)
    )

  copy_src = np.concatenate(
    [heatmaps.reshape(-1).view(np.uint8), masks.reshape(-1)]
  )
  copy_dst = np.empty_like(copy_src)

  def memory_copy():
    np.copyto(copy_dst, copy_src)

  np.testing.assert_allclose(np.asarray(ours()), numpy_einsum(), rtol=1e-4)

  rows = [
    ("ours: jax.jit(metrics.rma), uint8 masks", ours(), input_bytes),
    ("numpy einsum, float32 masks", None, heatmaps.nbytes + masks_f32.nbytes),
    ("numpy copy of ours' input bytes", None, input_bytes),
  ]
  fns = [ours, numpy_einsum, memory_copy]
  print(
    f"RMA of {args.n} heatmaps {args.size}x{args.size} float32; "
    f"jax {jax.__version__} on {jax.devices()[0].device_kind}, "
    f"{os.cpu_count()} CPU cores; median of {args.repeats}"
  )
  print(
    f"| {'what':42s} | {'seconds':>8s} | {'heatmaps/s':>10s} | {'GB read':>7s} | "
    f"{'GB/s':>6s} |"
  )
  print(f"|{'-' * 44}|{'-' * 10}|{'-' * 12}|{'-' * 9}|{'-' * 8}|")
  seconds = {}
  for (name, _, nbytes), fn in zip(rows, fns):
    s = _median_seconds(fn, args.repeats)
    seconds[name] = s
    print(
      f"| {name:42s} | {s:8.3f} | {args.n / s:10.0f} | {nbytes / 1e9:7.2f} | "
      f"{nbytes / 1e9 / s:6.2f} |"
    )
  names = [r[0] for r in rows]
  print(
    f"ours vs numpy einsum: {seconds[names[1]] / seconds[names[0]]:.2f}x faster; "
    f"ours / memory copy of the same bytes: "
    f"{seconds[names[0]] / seconds[names[2]]:.2f}x the time"
  )


if __name__ == "__main__":
  main()
