"""Forward throughput of the CLIP ViT-B/16 image tower: our jitted Flax port vs
transformers' PyTorch ``CLIPVisionModelWithProjection``, same random weights.

  python benchmarks/models.py                   # batch 16, 224 px, all variants
  python benchmarks/models.py --variants=default --rounds=3

Each variant runs in its own process (XLA flags are read once per process);
inside it, PyTorch (HF's default SDPA attention, and "eager" attention, which
materialises the attention matrix as XLA:CPU does) and Flax are timed in
alternating rounds so that all see the same machine load; a reported ratio is
the median of per-round ratios. Every variant also checks that both give the same embeddings.
Prints a markdown table (docs/benchmarks.md records the figures).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# name -> (extra XLA_FLAGS, Flax compute dtype, jax matmul precision)
VARIANTS = {
  "default": ("", "float32", None),
  "precision=highest": ("", "float32", "highest"),
  "no multi-thread eigen": (
    "--xla_cpu_multi_thread_eigen=false",
    "float32",
    None,
  ),
  "onednn": ("--xla_cpu_use_onednn=true", "float32", None),
  "no xnnpack": ("--xla_cpu_use_xnnpack=false", "float32", None),
  "fast math": ("--xla_cpu_enable_fast_math=true", "float32", None),
  "bfloat16 compute": ("", "bfloat16", None),
}


def make_checkpoint(directory: str) -> None:
  """A random full-size CLIP ViT-B/16 saved with save_pretrained."""
  import torch
  import transformers

  torch.manual_seed(0)
  config = transformers.CLIPConfig(
    vision_config=dict(patch_size=16), projection_dim=512
  )
  transformers.CLIPModel(config).save_pretrained(directory)


def measure(
  directory: str,
  variant: str,
  batch: int,
  image_size: int,
  rounds: int,
  iters: int,
) -> dict:
  """Time torch and Flax in alternating rounds; returns images/s and the ratio."""
  import jax
  import jax.numpy as jnp
  import numpy as np
  import torch
  import transformers

  from rationality_jax import models

  _, dtype, precision = VARIANTS[variant]
  # HF's default attention is SDPA: a fused CPU kernel that never materialises
  # the attention matrix. "eager" materialises it, as ours does on CPU (XLA:CPU
  # has no fused attention kernel): that is the like-for-like reference.
  references = {
    attention: transformers.CLIPVisionModelWithProjection.from_pretrained(
      directory, attn_implementation=attention
    ).eval()
    for attention in ("sdpa", "eager")
  }
  module, params = models.load(directory, dtype=getattr(jnp, dtype))
  # Every token through the last block, as transformers does: the same work
  # on both sides (the default `cls_only` skips the last block's MLP for the
  # patch tokens, which the reference computes; docs/benchmarks.md).
  module = module.clone(cls_only=False)
  images = (
    np.random.RandomState(0)
    .randn(batch, 3, image_size, image_size)
    .astype(np.float32)
  )
  torch_images = torch.tensor(images)
  flax_images = jnp.asarray(images.transpose(0, 2, 3, 1))

  @jax.jit
  def encode(params, images):
    with jax.default_matmul_precision(precision):
      return module.apply({"params": params}, images, method="encode_image")

  def run_torch(attention="sdpa"):
    with torch.inference_mode():
      return references[attention](pixel_values=torch_images).image_embeds

  def run_flax():
    return encode(params, flax_images).block_until_ready()

  start = time.perf_counter()
  flax_out = run_flax()
  compile_seconds = time.perf_counter() - start
  torch_out = run_torch()
  max_abs = float(np.abs(np.asarray(flax_out) - torch_out.numpy()).max())

  def seconds(fn):
    start = time.perf_counter()
    for _ in range(iters):
      fn()
    return (time.perf_counter() - start) / iters

  run_torch("eager")
  torch_rates, eager_rates, flax_rates = [], [], []
  for _ in range(rounds):
    torch_rates.append(batch / seconds(run_torch))
    eager_rates.append(batch / seconds(lambda: run_torch("eager")))
    flax_rates.append(batch / seconds(run_flax))
  ratios = [f / t for f, t in zip(flax_rates, torch_rates)]
  eager_ratios = [f / t for f, t in zip(flax_rates, eager_rates)]
  return {
    "variant": variant,
    "torch": float(np.median(torch_rates)),
    "torch_eager": float(np.median(eager_rates)),
    "flax": float(np.median(flax_rates)),
    "ratio": float(np.median(ratios)),
    "eager_ratio": float(np.median(eager_ratios)),
    "max_abs": max_abs,
    "compile_s": compile_seconds,
    "torch_threads": torch.get_num_threads(),
    "device": str(jax.devices()[0].platform),
  }


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--image-size", type=int, default=224)
  parser.add_argument("--rounds", type=int, default=5)
  parser.add_argument(
    "--iters", type=int, default=3, help="forward passes per round"
  )
  parser.add_argument(
    "--variants",
    default=",".join(VARIANTS),
    help=f"comma-separated subset of: {', '.join(VARIANTS)}",
  )
  parser.add_argument(
    "--child", help=argparse.SUPPRESS
  )  # directory: run one variant
  args = parser.parse_args()
  if args.child:
    print(
      json.dumps(
        measure(
          args.child,
          args.variants,
          args.batch,
          args.image_size,
          args.rounds,
          args.iters,
        )
      )
    )
    return
  os.environ.setdefault("HF_HUB_OFFLINE", "1")
  with tempfile.TemporaryDirectory() as directory:
    make_checkpoint(directory)
    rows = []
    for variant in args.variants.split(","):
      env = dict(os.environ)
      env["XLA_FLAGS"] = (
        env.get("XLA_FLAGS", "") + " " + VARIANTS[variant][0]
      ).strip()
      result = subprocess.run(
        [
          sys.executable,
          __file__,
          f"--child={directory}",
          f"--variants={variant}",
          f"--batch={args.batch}",
          f"--image-size={args.image_size}",
          f"--rounds={args.rounds}",
          f"--iters={args.iters}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=False,
      )
      if result.returncode:
        print(
          f"variant {variant!r} failed:\n{result.stderr[-2000:]}",
          file=sys.stderr,
        )
        continue
      rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
  print(
    f"\nCLIP ViT-B/16 image tower, batch {args.batch}, {args.image_size} px, "
    f"{rows[0]['device'] if rows else '?'}; median of {args.rounds} rounds x "
    f"{args.iters} forwards\n"
  )
  print(
    "| Flax variant | PyTorch (SDPA) img/s | PyTorch (eager attention) img/s | "
    "Flax img/s | Flax / SDPA | Flax / eager | max abs diff | compile s |"
  )
  print("|---|---|---|---|---|---|---|---|")
  for row in rows:
    print(
      f"| {row['variant']} | {row['torch']:.2f} | {row['torch_eager']:.2f} | "
      f"{row['flax']:.2f} | {row['ratio']:.2f} | {row['eager_ratio']:.2f} | "
      f"{row['max_abs']:.1e} | {row['compile_s']:.1f} |"
    )


if __name__ == "__main__":
  main()
