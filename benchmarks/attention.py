"""Fused attention: `jax.nn.dot_product_attention`'s implementations side by side.

    python benchmarks/attention.py [--batch 128] [--tokens 197] [--heads 12]
        [--head-dim 64] [--dtype bfloat16] [--reps 20]

Times XLA's attention (``implementation='xla'``, what the blocks that no
explanation reads run on a GPU; `models.vit.dot_product_attention`) and
cuDNN's (``'cudnn'``), forward and forward + backward, without and with a
[B, 1, N, N] boolean mask (the text tower's padding), at ViT-B/16's shape by
default. Prints a markdown table of median milliseconds (compilation
excluded) and each cuDNN output's largest difference from XLA's; an
implementation the platform or the shape does not support is listed with the
reason it gave (on CPU there is no cuDNN).
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np


def _median_ms(fn, args, reps: int) -> float:
  jax.block_until_ready(fn(*args))  # compile + warm up
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--tokens", type=int, default=197)
  parser.add_argument("--heads", type=int, default=12)
  parser.add_argument("--head-dim", type=int, default=64)
  parser.add_argument("--dtype", default="bfloat16")
  parser.add_argument("--reps", type=int, default=20)
  args = parser.parse_args()

  rng = np.random.default_rng(0)
  shape = (args.batch, args.tokens, args.heads, args.head_dim)
  q, k, v = (
    jnp.asarray(rng.standard_normal(shape), args.dtype) for _ in range(3)
  )
  n = args.tokens
  mask = jnp.asarray(rng.random((args.batch, 1, n, n)) < 0.9) | jnp.eye(
    n, dtype=bool
  )
  print(
    f"attention [B, N, H, d] = {list(shape)} {args.dtype}; jax "
    f"{jax.__version__} on {jax.devices()[0].device_kind}; median of "
    f"{args.reps}"
  )
  print(
    "| implementation | mask | forward ms | forward + backward ms | max diff vs xla |"
  )
  print("|---|---|---|---|---|")
  reference = {}
  for implementation in ("xla", "cudnn"):
    for m in (None, mask):

      def forward(q, k, v, implementation=implementation, m=m):
        return jax.nn.dot_product_attention(
          q, k, v, mask=m, implementation=implementation
        )

      def loss(q, k, v, forward=forward):
        return forward(q, k, v).astype(jnp.float32).sum()

      label = "-" if m is None else "[B, 1, N, N]"
      cells = []
      try:
        out = np.asarray(jax.jit(forward)(q, k, v), np.float32)
        cells.append(
          f"{_median_ms(jax.jit(forward), (q, k, v), args.reps):.3f}"
        )
      except Exception as error:  # reported, not raised
        print(
          f"| {implementation} | {label} | {type(error).__name__}: {error} | | |"
        )
        continue
      try:
        grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2)))
        cells.append(f"{_median_ms(grad, (q, k, v), args.reps):.3f}")
      except Exception as error:  # reported, not raised
        cells.append(f"{type(error).__name__}: {error}")
      if implementation == "xla":
        reference[label] = out
        cells.append("-")
      else:
        cells.append(f"{np.abs(out - reference[label]).max():.1e}")
      print(f"| {implementation} | {label} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
  main()
