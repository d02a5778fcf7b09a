r"""RMA throughput against a memory copy and numpy's einsum; bootstrap intervals.

    python benchmarks/metrics.py [--n 5000] [--size 224] [--repeats 15]
        [--what rma,bootstrap,road] [--bootstrap-n 50000] [--resamples 1000]
        [--road-batch 8]

Computes RMA for N heatmaps [N, S, S] float32 against masks [N, S, S] uint8,
checked against numpy first. The three contenders run on the same inputs in
interleaved rounds (the order rotates every round), each timed to completion
(`block_until_ready` for ours). The table gives median seconds and input bytes
read per second; the ratios under it are medians of the per-round ratios, so a
machine whose load drifts during the run still compares like with like:

  ours / copy    time of `jax.jit(metrics.rma)` over the time numpy takes to
                 copy ours' input bytes (read and write them once);
  ours / einsum  over `np.einsum("nhw,nhw->n", H, M) / H.sum((1, 2))` with
                 float32 masks (numpy needs one dtype, so it reads 1.6x the
                 bytes).

ROAD (`explain.imputation.impute`, --what road): the noisy linear imputation
of --road-batch images of --size px with half their pixels removed (as
scattered pixels, as half of the 16-pixel patches, as one block: the left
half), ours jitted (conjugate gradients on the device, the whole batch at
once) against the reference's way, a scipy.sparse system built and solved
with ``spsolve`` per image (`tests/explain/reference_road.py`: run with
PYTHONPATH=.), in interleaved rounds; the max abs difference of the noiseless fills is checked
first.

Bootstrap (`metrics.bootstrap`): percentile intervals of accuracy, PT and IR
over --bootstrap-n per-sample records with --resamples resamples, timed from
the per-sample arrays to the intervals (jitted, after a warm-up call), for one
method (8 cells) and a paired difference of two (64 joint cells), against
index resampling of the same statistic (`jax.random.randint` indices [B, N]
and a scatter-add of their cells: what the multinomial draw replaces).
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import numpy as np

from rationality_jax import metrics
from rationality_jax.explain import imputation


def _timed_rounds(fns: dict, repeats: int) -> dict[str, np.ndarray]:
  """Seconds per call, [repeats] per name, in rounds of one call each."""
  for fn in fns.values():
    fn()  # warm-up (and compilation for the jitted one)
  names = list(fns)
  times = {name: [] for name in names}
  for round_index in range(repeats):
    shift = round_index % len(names)
    for name in names[shift:] + names[:shift]:
      start = time.perf_counter()
      fns[name]()
      times[name].append(time.perf_counter() - start)
  return {name: np.asarray(t) for name, t in times.items()}


def bootstrap_rows(n: int, resamples: int, repeats: int) -> None:
  """Times and prints the bootstrap table (module docstring)."""
  rng = np.random.default_rng(1)
  correct = jax.device_put(rng.random(n) < 0.7)
  valid = jax.device_put((rng.random(n) < 0.5).astype(np.float32))
  valid_b = jax.device_put((rng.random(n) < 0.6).astype(np.float32))
  key = jax.random.key(0)

  def single():
    out = metrics.bootstrap_intervals(
      correct, valid, key=key, resamples=resamples
    )
    return jax.block_until_ready(out)

  def paired():
    out = metrics.paired_bootstrap(
      correct, valid, correct, valid_b, key=key, resamples=resamples
    )
    return jax.block_until_ready(out)

  @jax.jit
  def by_indices(key, correct, valid):
    indices = jax.random.randint(key, (resamples, n), 0, n)
    return metrics.bootstrap_intervals(correct, valid, key=key, indices=indices)

  def indexed():
    return jax.block_until_ready(by_indices(key, correct, valid))

  rows = {
    "ours: one method (multinomial, 8 cells)": single,
    "ours: paired difference (64 joint cells)": paired,
    "index resampling (randint + scatter-add)": indexed,
  }
  times = _timed_rounds(rows, repeats)
  print(
    f"\nBootstrap intervals (accuracy, PT, IR) of {n} records x {resamples} "
    f"resamples; {repeats} interleaved rounds"
  )
  print(f"| {'what':42s} | {'median s':>8s} | {'min s':>8s} |")
  print(f"|{'-' * 44}|{'-' * 10}|{'-' * 10}|")
  for name, t in times.items():
    print(f"| {name:42s} | {np.median(t):8.4f} | {np.min(t):8.4f} |")


def road_masks(batch: int, size: int) -> dict[str, np.ndarray]:
  """Half of each image removed, three ways: [batch, size, size] bool each."""
  rng = np.random.default_rng(2)
  cells = -(-size // 16)
  patches = rng.random((batch, cells * cells)).argsort(1) < cells * cells // 2
  patches = patches.reshape(batch, cells, cells).repeat(16, 1).repeat(16, 2)
  block = np.zeros((batch, size, size), bool)
  block[:, :, : size // 2] = True
  return {
    "scattered pixels": rng.random((batch, size, size)) < 0.5,
    "16-px patches": patches[:, :size, :size],
    "one block (left half)": block,
  }


def road_rows(batch: int, size: int, repeats: int) -> None:
  """Times and prints the ROAD imputation table (module docstring)."""
  # the repository's root on the path (PYTHONPATH=.), as benchmarks/heatmaps.py
  from tests.explain import reference_road

  rng = np.random.default_rng(3)
  images = rng.standard_normal((batch, size, size, 3)).astype(np.float32)
  fill = jax.jit(imputation.impute)
  steps_of = jax.jit(imputation.linear_fill)
  print(
    f"\nROAD imputation of {batch} images {size}x{size}x3, half removed; "
    f"{repeats} interleaved rounds"
  )
  print(
    "| removed half as | ours s | ours CG steps (max) | scipy spsolve s | "
    "ours / scipy | max abs diff |"
  )
  print("|---|---|---|---|---|---|")
  for name, removed in road_masks(batch, size).items():
    images_dev, removed_dev = jax.device_put(images), jax.device_put(removed)
    clean, steps = steps_of(images_dev, removed_dev)
    reference = np.stack(
      [reference_road.spsolve_fill(images[k], removed[k]) for k in range(batch)]
    )
    diff = np.abs(np.asarray(clean) - reference).max()

    def ours(images_dev=images_dev, removed_dev=removed_dev):
      return fill(images_dev, removed_dev).block_until_ready()

    def scipy_reference(removed=removed):
      return [
        reference_road.spsolve_fill(images[k], removed[k]) for k in range(batch)
      ]

    times = _timed_rounds({"ours": ours, "scipy": scipy_reference}, repeats)
    ours_s, scipy_s = (float(np.median(t)) for t in times.values())
    ratio = float(np.median(times["ours"] / times["scipy"]))
    print(
      f"| {name} | {ours_s:.3f} | {int(np.max(steps))} | {scipy_s:.3f} | "
      f"{ratio:.2f}x | {diff:.1e} |"
    )


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=5000)
  parser.add_argument("--size", type=int, default=224)
  parser.add_argument("--repeats", type=int, default=15)
  parser.add_argument("--what", default="rma,bootstrap")
  parser.add_argument("--bootstrap-n", type=int, default=50_000)
  parser.add_argument("--resamples", type=int, default=1000)
  parser.add_argument("--road-batch", type=int, default=8)
  args = parser.parse_args()
  what = set(args.what.split(","))
  if "rma" in what:
    rma_rows(args)
  if "bootstrap" in what:
    bootstrap_rows(args.bootstrap_n, args.resamples, min(args.repeats, 7))
  if "road" in what:
    road_rows(args.road_batch, args.size, min(args.repeats, 5))


def rma_rows(args) -> None:
  """Times and prints the RMA table (module docstring)."""

  rng = np.random.default_rng(0)
  shape = (args.n, args.size, args.size)
  heatmaps = rng.random(shape, dtype=np.float32)
  masks = (rng.random(shape, dtype=np.float32) < 0.3).astype(np.uint8)
  masks_f32 = masks.astype(np.float32)
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

  rows = {
    "ours: jax.jit(metrics.rma), uint8 masks": (ours, input_bytes),
    "numpy einsum, float32 masks": (
      numpy_einsum,
      heatmaps.nbytes + masks_f32.nbytes,
    ),
    "numpy copy of ours' input bytes": (memory_copy, input_bytes),
  }
  times = _timed_rounds({k: fn for k, (fn, _) in rows.items()}, args.repeats)
  print(
    f"RMA of {args.n} heatmaps {args.size}x{args.size} float32; "
    f"jax {jax.__version__} on {jax.devices()[0].device_kind}, "
    f"{os.cpu_count()} CPU cores; {args.repeats} interleaved rounds"
  )
  print(
    f"| {'what':42s} | {'median s':>8s} | {'heatmaps/s':>10s} | "
    f"{'GB read':>7s} | {'GB/s':>6s} |"
  )
  print(f"|{'-' * 44}|{'-' * 10}|{'-' * 12}|{'-' * 9}|{'-' * 8}|")
  for name, (_, nbytes) in rows.items():
    s = float(np.median(times[name]))
    print(
      f"| {name:42s} | {s:8.3f} | {args.n / s:10.0f} | {nbytes / 1e9:7.2f} | "
      f"{nbytes / 1e9 / s:6.2f} |"
    )
  ours_t, einsum_t, copy_t = times.values()
  print(
    f"ours / copy: {np.median(ours_t / copy_t):.2f}x the time; "
    f"ours / einsum: {np.median(ours_t / einsum_t):.2f}x the time "
    "(medians of per-round ratios)"
  )


if __name__ == "__main__":
  main()
