"""Images/s of the relevance heatmap + RMA: ours (one jitted forward+backward) vs
the PyTorch reference of the same method on the same weights, in the same run.

Model: CLIP ViT-B/16 with random weights and the HF config sizes (vision 768
wide, 12 blocks, 12 heads, 16 px patches at 224 px; text 512 wide, 12 blocks;
projection 512), saved with ``save_pretrained`` and loaded by both sides. Score:
the zero-shot logit of the label against 200 class embeddings. Heatmap: Chefer
relevance, upsampled to 224 px and min-max normalized, then RMA against a box
mask. Each repetition also times a matmul first (4096 x 4096 float32 on CPU,
8192 x 8192 bfloat16 on an accelerator: the machine's matmul throughput in the
same run, `machine.matmul_reference`) and ours' achieved GFLOP/s (FLOPs from
XLA's cost analysis of the compiled explainer) as a fraction of it. The
model's last block computes the CLS token only (`VisionTransformer.cls_only`),
so ours does less work per image than the reference; the column "same, on
the full last block's GFLOP" counts the FLOPs of the heatmap with every token
through the last block instead (in brackets): ours' images/s against the
matmul for the work the reference does.

Both sides compute in float32. On a GPU PyTorch runs there too (--torch-device,
default cuda when JAX's backend is a GPU), with TF32 matmuls allowed as JAX's
default precision does there; each PyTorch call ends with a device sync.

PyTorch reference modes:
  weights: every weight keeps requires_grad (what the study's release does, so
           autograd also forms all weight gradients);
  frozen:  weights frozen, gradient through the input (the cheapest way to get
           dS/dA from an unmodified HF model without hooks).

    PYTHONPATH=. python benchmarks/heatmaps.py           # CPU, batch 16, both start layers
    PYTHONPATH=. python benchmarks/heatmaps.py --batch 16 --reps 3 --json /tmp/heatmaps.json
    PYTHONPATH=. python benchmarks/heatmaps.py --torch-modes   # ours + matmul only
    PYTHONPATH=. python benchmarks/heatmaps.py --arch tiny --batch 4 --reps 1  # a smoke run

`setup` and `measure` are the same rows as functions (`benchmarks/accelerator.py`).

Writes a markdown table to stdout (and the numbers as JSON with --json).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import jax
import jax.numpy as jnp
from machine import FlopCount
from machine import add_host_memory_flag
from machine import apply_host_memory
from machine import interleaved
from machine import matmul_reference
import numpy as np
import torch
import transformers

from rationality_jax import explain
from rationality_jax import models
from tests.explain import reference_torch as ref

# transformers.CLIPConfig sizes: "b16" is CLIP ViT-B/16 (HF's defaults with
# 16 px patches), "tiny" a two-block model for dry runs
# (`benchmarks/accelerator.py --dry-run`).
ARCHS = {
  "b16": dict(
    vision_config=dict(patch_size=16, image_size=224), projection_dim=512
  ),
  "tiny": dict(
    vision_config=dict(
      hidden_size=32,
      intermediate_size=64,
      num_hidden_layers=2,
      num_attention_heads=2,
      image_size=32,
      patch_size=8,
    ),
    text_config=dict(
      hidden_size=32,
      intermediate_size=64,
      num_hidden_layers=2,
      num_attention_heads=2,
    ),
    projection_dim=16,
  ),
}


def _build(directory: str, arch: str = "b16"):
  torch.manual_seed(0)
  config = transformers.CLIPConfig(**ARCHS[arch])
  config._attn_implementation = "eager"
  model = transformers.CLIPModel(config).eval()
  model.save_pretrained(directory)
  module, params = models.load(directory)
  return model, module, params


def setup(
  batch: int, classes: int, torch_device: str, arch: str = "b16"
) -> dict:
  """The model on both sides (same weights) and one batch of inputs, placed
  for JAX and for PyTorch on `torch_device`."""
  with tempfile.TemporaryDirectory() as directory:
    model, module, params = _build(directory, arch)
  size = model.config.vision_config.image_size
  embed = model.config.projection_dim
  rng = np.random.default_rng(0)
  images = rng.standard_normal((batch, 3, size, size)).astype(np.float32)
  class_embeddings = rng.standard_normal((classes, embed)).astype(np.float32)
  labels = rng.integers(0, classes, batch)
  masks = np.zeros((batch, size, size), np.float32)
  # The box of the 224 px benchmark (rows 56:168, columns 40:150), scaled.
  masks[
    :,
    size * 56 // 224 : size * 168 // 224,
    size * 40 // 224 : size * 150 // 224,
  ] = 1.0

  device_t = torch.device(torch_device)
  if device_t.type == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
  return {
    "batch": batch,
    "module": module,
    "params": params,
    "jax": (
      jax.device_put(jnp.asarray(images.transpose(0, 2, 3, 1))),
      {"class_embeddings": jnp.asarray(class_embeddings)},
      jnp.asarray(labels),
      jnp.asarray(masks),
    ),
    "model": model.to(device_t),
    "device": device_t,
    "torch": tuple(
      torch.from_numpy(x).to(device_t) for x in (images, labels, masks)
    ),
    "torch_head": {
      "class_embeddings": torch.from_numpy(class_embeddings).to(device_t)
    },
  }


def measure(
  inputs: dict, start_layer: int, reps: int, torch_modes, reference
) -> dict:
  """One row: ours and each PyTorch mode on `setup`'s inputs, interleaved
  with `reference` (a `machine.MatmulReference`) over `reps` repetitions."""
  module, params = inputs["module"], inputs["params"]
  images_j, head_j, labels_j, masks_j = inputs["jax"]
  images_t, labels_t, masks_t = inputs["torch"]
  model, head_t, device_t = (
    inputs["model"],
    inputs["torch_head"],
    inputs["device"],
  )
  batch = inputs["batch"]

  def sync():
    if device_t.type == "cuda":
      torch.cuda.synchronize(device_t)

  explainer = explain.make_explainer(
    module, explain.targets.zero_shot, explain.Chefer(start_layer=start_layer)
  )
  # Counted on the host CPU while the device compiles and runs (machine.py).
  flops = FlopCount(explainer, params, head_j, images_j, labels_j, masks_j)
  # The same heatmap with every token through the last block (what the
  # PyTorch reference computes): the work that the fraction below would
  # count without `cls_only`.
  full_flops = FlopCount(
    explain.make_explainer(
      module.clone(cls_only=False),
      explain.targets.zero_shot,
      explain.Chefer(start_layer=start_layer),
    ),
    params,
    head_j,
    images_j,
    labels_j,
    masks_j,
  )
  start = time.perf_counter()
  compiled = explainer.lower(
    params, head_j, images_j, labels_j, masks_j
  ).compile()
  compile_s = time.perf_counter() - start
  outputs = {}

  def ours():
    outputs["ours"] = jax.block_until_ready(
      compiled(params, head_j, images_j, labels_j, masks_j)
    )

  references = {}
  for mode in torch_modes:

    def reference_run(weights_grad=mode == "weights", mode=mode):
      _, _, heatmap = ref.chefer(
        model,
        images_t,
        head_t,
        labels_t,
        start_layer=start_layer,
        weights_grad=weights_grad,
      )
      outputs[mode] = heatmap, ref.rma(heatmap, masks_t)
      sync()

    references[mode] = reference_run
  ours()  # first call outside the timing
  # Interleaved repetitions (matmul, ours, then each reference) and medians:
  # the machine is shared, so load changes hit every contender alike.
  flops, full_flops = flops.result(compiled), full_flops.result()
  stats = interleaved(ours, flops, reps, reference, references)
  ours_s = stats["median_s"]
  row = {
    "start_layer": start_layer,
    "batch": batch,
    "ours_images_per_s": batch / ours_s,
    "ours_compile_s": compile_s,
    "gflop_per_image": flops / batch / 1e9,
    "ours_gflops": stats["gflops"],
    "matmul_gflops": stats["matmul_gflops"],
    "fraction_of_matmul": stats["fraction"],
    "full_tower_gflop_per_image": full_flops / batch / 1e9,
    "fraction_of_matmul_full_tower_work": stats["fraction"]
    * full_flops
    / flops,
    "cpu_fraction_of_matmul": stats["cpu_fraction"],
    "seconds": {"ours": stats["seconds"], **stats["others"]},
    "matmul_seconds": stats["matmul_seconds"],
  }
  for mode in references:
    torch_s = float(np.median(stats["others"][mode]))
    row[f"torch_{mode}_images_per_s"] = batch / torch_s
    row[f"speedup_vs_torch_{mode}"] = torch_s / ours_s
    heatmap, rma = outputs[mode]
    row["max_abs_diff_heatmap"] = float(
      np.abs(
        np.asarray(outputs["ours"]["heatmap"]) - heatmap.cpu().numpy()
      ).max()
    )
    row["max_abs_diff_rma"] = float(
      np.abs(np.asarray(outputs["ours"]["rma"]) - rma.cpu().numpy()).max()
    )
  return row


def main():
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--classes", type=int, default=200)
  parser.add_argument(
    "--reps",
    type=int,
    default=3,
    help="interleaved timed repetitions; medians are reported",
  )
  parser.add_argument("--start-layers", type=int, nargs="+", default=[-1, 0])
  parser.add_argument("--torch-modes", nargs="*", default=["weights", "frozen"])
  parser.add_argument("--json", default=None)
  parser.add_argument(
    "--torch-device",
    default="cuda" if jax.default_backend() == "gpu" else "cpu",
    help="where the PyTorch reference runs (default: cuda next to a JAX GPU)",
  )
  parser.add_argument("--arch", choices=sorted(ARCHS), default="b16")
  add_host_memory_flag(parser)
  args = parser.parse_args()
  apply_host_memory(args)

  inputs = setup(args.batch, args.classes, args.torch_device, args.arch)
  reference = matmul_reference()
  rows = []
  for start_layer in args.start_layers:
    row = measure(inputs, start_layer, args.reps, args.torch_modes, reference)
    rows.append(row)
    print(json.dumps(row), flush=True)

  env = (
    f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores visible, "
    f"jax {jax.__version__} ({jax.devices()[0].device_kind}), torch "
    f"{torch.__version__} on {args.torch_device} "
    f"({torch.get_num_threads()} threads), load average at the end "
    f"{os.getloadavg()[0]:.1f}, GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')}"
  )
  print(f"\n{env}\n")
  modes = args.torch_modes
  print(
    "| start_layer | GFLOP/image | ours img/s | ours GFLOP/s | matmul GFLOP/s | "
    "fraction of matmul (wall) | (CPU time) | "
    "same, on the full last block's GFLOP | "
    + "".join(f"torch ({m}) img/s | speedup vs {m} | " for m in modes)
    + "max abs diff |"
  )
  print("|---" * (9 + 2 * len(modes)) + "|")
  for row in rows:
    cells = [
      f"{row['start_layer']}",
      f"{row['gflop_per_image']:.1f}",
      f"{row['ours_images_per_s']:.2f}",
      f"{row['ours_gflops']:.1f}",
      f"{row['matmul_gflops']:.1f}",
      f"{row['fraction_of_matmul']:.2f}",
      f"{row['cpu_fraction_of_matmul']:.2f}",
      f"{row['fraction_of_matmul_full_tower_work']:.2f} "
      f"({row['full_tower_gflop_per_image']:.1f})",
    ]
    for m in modes:
      cells += [
        f"{row[f'torch_{m}_images_per_s']:.2f}",
        f"{row[f'speedup_vs_torch_{m}']:.2f}x",
      ]
    cells.append(f"{row.get('max_abs_diff_heatmap', float('nan')):.1e}")
    print("| " + " | ".join(cells) + " |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"environment": env, "rows": rows}, f, indent=2)


if __name__ == "__main__":
  main()
