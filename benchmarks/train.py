r"""Seconds per training step: ours (jitted JAX) per method vs transformers' PyTorch CLIPModel.

    python benchmarks/train.py [--model b32] [--batch 32] [--steps 3] [--dtype float32]
                               [--method flcp[,ft,guided,...]] [--skip-torch]

Both sides: CLIP ViT-B/32 sizes (OpenAI's / HF's default `CLIPConfig`) with
random weights, a batch of 224 px images and their "a photo of a {label}"
captions at text length 77, the symmetric contrastive loss with the CLIP
temperature fixed at 0.07 (FLCP as in the release), Adam (0.9, 0.999, 1e-8,
lr 1e-5) on both towers and projections. Ours is `rationality_jax.run.train`'s own
step (`make_train_step`: value_and_grad + multi_transform Adam, donated state),
PyTorch's is forward + backward + `torch.optim.Adam.step`. Random values: ours
draws them with numpy by shape (`quick_params`), PyTorch with its own
initialisers; the cost of a step does not depend on them. Prints one table
(median over `--steps` timed steps after one warm-up step; compilation shown
separately), ours' achieved GFLOP/s (FLOPs from XLA's cost analysis of the
compiled step) as a fraction of a 4096 x 4096 float32 matmul timed right before
each of our steps (`machine.py`; the machine's matmul throughput in the
same run) and, on a GPU/TPU, the model FLOPs utilisation against
`--peak-tflops`. Run from the repository root with ``PYTHONPATH=.``.

``--method`` times other methods' steps on the same model and batch, one row
each, with its cost relative to the first in seconds and in units of the
matmul timed right before each step (``step / matmul``: the ratio a shared
machine's changing load does not move): e.g. ``--method
ft,guided_ft,flcp,guided,rrr --skip-torch``. FT-like methods get a linear
head on the projected embedding; the guided and rrr steps get a random
rectangle as every image's object mask (``masks_per_class`` -1: the penalty
runs on every step). The PyTorch row is FLCP's.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import time

import jax
import jax.numpy as jnp
from machine import MatmulReference
from machine import add_host_memory_flag
from machine import apply_host_memory
from machine import interleaved
from machine import xla_flops
import ml_collections
import numpy as np

from rationality_jax import methods
from rationality_jax import models
from rationality_jax import sharding
from rationality_jax.run import config as config_lib
from rationality_jax.run import optim
from rationality_jax.run import step as step_lib

REPO = pathlib.Path(__file__).resolve().parents[1]


def train_config(
  model: str, dtype: str, method: str = "flcp"
) -> ml_collections.ConfigDict:
  config = config_lib.from_file(
    REPO / "configs" / "train.py", f"method={method},model=random:{model}"
  )
  config.model.dtype = dtype
  return config


def architecture(config) -> models.VLMConfig:
  """The `VLMConfig` of ``random:<arch>`` (no weights initialised)."""
  return models.families.ARCHITECTURES[
    config.model.path.removeprefix("random:")
  ]


def batch_of(batch: int, size: int, length: int, seed: int = 0):
  rng = np.random.default_rng(seed)
  images = rng.standard_normal((batch, size, size, 3), np.float32)
  labels = rng.integers(0, batch, batch).astype(np.int32)
  return images, labels


def time_steps(step, steps: int) -> tuple[float, float]:
  """(first call seconds, median seconds of the next `steps` calls)."""
  start = time.perf_counter()
  step()
  first = time.perf_counter() - start
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    step()
    times.append(time.perf_counter() - start)
  return first, float(np.median(times))


def quick_params(module, seed: int = 0):
  """Random params by shape on the host (N(0, 0.02), LayerNorm scale 1, bias 0).

  The values do not change the step's cost; drawing them with numpy skips
  compiling the per-leaf random initialisers (minutes on CPU at B/32).
  """
  cfg = module.config
  shapes = jax.eval_shape(
    module.init,
    jax.random.PRNGKey(0),
    jnp.zeros((1, cfg.vision.image_size, cfg.vision.image_size, 3)),
    jnp.zeros((1, cfg.text.context_length), jnp.int32),
  )["params"]
  rng = np.random.default_rng(seed)

  def one(path, leaf):
    name = optim.path_name(path)
    if name.endswith("scale") and leaf.ndim == 1:
      return np.ones(leaf.shape, leaf.dtype)
    if name.endswith("bias"):
      return np.zeros(leaf.shape, leaf.dtype)
    if name == "logit_scale":
      return np.asarray(2.6592, leaf.dtype)
    return (0.02 * rng.standard_normal(leaf.shape)).astype(leaf.dtype)

  return jax.tree_util.tree_map_with_path(one, shapes)


def method_inputs(method, module, images, labels, num_classes: int):
  """(head, batch, task additions) a method's step reads beyond FLCP's."""
  batch = {"image": images, "label": labels}
  head, extra = {}, {}
  if method.loss == "cross_entropy":  # a linear head on the embedding
    rng = np.random.default_rng(1)
    e = module.config.embed_dim
    head = {
      "kernel": (rng.standard_normal((e, num_classes)) / np.sqrt(e)).astype(
        np.float32
      ),
      "bias": np.zeros((num_classes,), np.float32),
    }
  if method.needs_masks:
    b, size = images.shape[0], images.shape[1]
    masks = np.zeros((b, size, size), np.uint8)
    masks[:, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1
    batch.update(mask=masks, index=np.arange(b, dtype=np.int32))
    extra["mask_selected"] = np.ones((b,), bool)
  return head, batch, extra


def ours(config, images, labels, class_names, steps: int, peak_tflops: float):
  method = methods.METHODS[config.method]
  module = models.VisionLanguageModel(
    architecture(config), dtype=jnp.dtype(config.model.dtype)
  )
  params = quick_params(module)
  tokenizer = models.family(module.config).tokenizer(module.config)
  task = methods.heads.make_task(tokenizer, class_names)
  task = {k: v for k, v in task.items() if not k.startswith("prompt_")}
  head, batch, extra = method_inputs(
    method, module, images, labels, len(class_names)
  )
  task.update(extra)
  mesh = sharding.make_mesh([("data", -1)])
  trainable = {"params": params, "head": head}
  labels_tree = step_lib.trainable_labels(
    config, method, module.config, trainable
  )
  tx = optim.make_optimizer(config.train.optim, labels_tree, 1000)
  schedule = optim.schedule(config.train.optim, 1000)
  state = {
    "step": jnp.zeros((), jnp.int32),
    **trainable,
    "opt_state": tx.init(trainable),
    "rng": jax.random.PRNGKey(0),
  }
  shardings = sharding.fsdp_shardings(state, mesh, None)
  state = jax.device_put(state, shardings)
  raw_step = step_lib.make_train_step(
    method, module, config, tx, labels_tree, schedule
  )
  step_fn = jax.jit(
    raw_step,
    in_shardings=(
      shardings,
      sharding.batch_sharding(mesh),
      sharding.replicated(mesh),
    ),
    out_shardings=(shardings, sharding.replicated(mesh)),
    donate_argnums=(0,),
  )
  batch = sharding.put(batch, sharding.batch_sharding(mesh))
  task = sharding.put(task, sharding.replicated(mesh))
  flops = xla_flops(raw_step, state, batch, task)
  start = time.perf_counter()
  compiled = step_fn.lower(state, batch, task).compile()
  compile_s = time.perf_counter() - start
  holder = {"state": state}

  def one():
    holder["state"], metrics = compiled(holder["state"], batch, task)
    jax.block_until_ready(metrics["loss"])

  start = time.perf_counter()
  one()
  first = time.perf_counter() - start
  stats = interleaved(one, flops, steps, MatmulReference())
  per_step = stats["median_s"]
  mfu = flops / per_step / (peak_tflops * 1e12) if peak_tflops else None
  return {
    "compile_s": compile_s,
    "first_s": first,
    "step_s": per_step,
    "flops": flops,
    "mfu": mfu,
    "gflops": stats["gflops"],
    "matmul_gflops": stats["matmul_gflops"],
    "fraction": stats["fraction"],
    "cpu_fraction": stats["cpu_fraction"],
    "seconds": stats["seconds"],
    "matmul_seconds": stats["matmul_seconds"],
    # The step in units of the matmul timed right before it: a cost ratio
    # between methods that a shared machine's changing load does not move.
    "matmuls": float(
      np.median(
        [a / b for a, b in zip(stats["seconds"], stats["matmul_seconds"])]
      )
    ),
  }


def features(output):
  """transformers >= 5 returns a ModelOutput whose pooler_output is the projection."""
  return output if hasattr(output, "norm") else output.pooler_output


def pytorch(config, images, labels, class_names, steps: int, threads: int):
  import torch
  import transformers

  torch.set_num_threads(threads)
  torch.manual_seed(0)
  arch = architecture(config)
  v, t = arch.vision, arch.text
  hf_config = transformers.CLIPConfig(
    text_config=dict(
      hidden_size=t.width,
      intermediate_size=t.mlp_dim,
      num_hidden_layers=t.depth,
      num_attention_heads=t.num_heads,
      max_position_embeddings=t.context_length,
      vocab_size=t.vocab_size,
    ),
    vision_config=dict(
      hidden_size=v.width,
      intermediate_size=v.mlp_dim,
      num_hidden_layers=v.depth,
      num_attention_heads=v.num_heads,
      image_size=v.image_size,
      patch_size=v.patch_size,
    ),
    projection_dim=arch.embed_dim,
  )
  model = transformers.CLIPModel(hf_config).train()
  tokenizer = models.tokenizer("clip", t.context_length)
  ids, mask = tokenizer([f"a photo of a {class_names[i]}" for i in labels])
  pixels = torch.from_numpy(images.transpose(0, 3, 1, 2).copy())
  ids, mask = (
    torch.from_numpy(ids.astype(np.int64)),
    torch.from_numpy(mask.astype(np.int64)),
  )
  params = [p for n, p in model.named_parameters() if n != "logit_scale"]
  opt = torch.optim.Adam(params, lr=1e-5, betas=(0.9, 0.999), eps=1e-8)
  targets = torch.arange(len(labels))

  def one():
    image = torch.nn.functional.normalize(
      features(model.get_image_features(pixel_values=pixels)), dim=-1
    )
    text = torch.nn.functional.normalize(
      features(model.get_text_features(input_ids=ids, attention_mask=mask)),
      dim=-1,
    )
    logits = image @ text.T / 0.07
    loss = (
      torch.nn.functional.cross_entropy(logits, targets)
      + torch.nn.functional.cross_entropy(logits.T, targets)
    ) / 2
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()

  first, per_step = time_steps(one, steps)
  return {"compile_s": 0.0, "first_s": first, "step_s": per_step}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--model", default="b32")
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--steps", type=int, default=3)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument(
    "--threads", type=int, default=2, help="torch intra-op threads"
  )
  parser.add_argument(
    "--peak-tflops",
    type=float,
    default=0.0,
    help="accelerator peak for MFU (e.g. 989 for H100/H200 bf16 dense)",
  )
  parser.add_argument(
    "--method",
    default="flcp",
    help="comma-separated methods, one row each (e.g. ft,guided_ft,flcp,guided)",
  )
  parser.add_argument("--skip-torch", action="store_true")
  add_host_memory_flag(parser)
  args = parser.parse_args()
  apply_host_memory(args)

  names = [m for m in args.method.split(",") if m]
  config = train_config(args.model, args.dtype)
  arch = architecture(config)
  size, length = arch.vision.image_size, arch.text.context_length
  class_names = [f"class {i}" for i in range(args.batch)]
  images, labels = batch_of(args.batch, size, length)
  device = jax.devices()[0]
  print(
    f"{'/'.join(names)} step, CLIP {args.model} random init, batch {args.batch}, "
    f"{size} px, text {length}, {device.platform} ({device.device_kind}), jax "
    f"{jax.__version__}, GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES')}"
  )
  rows = []
  for name in names:
    result = ours(
      train_config(args.model, args.dtype, name),
      images,
      labels,
      class_names,
      args.steps,
      args.peak_tflops,
    )
    rows.append((f"rationality_jax (jit), {name}", result))
    print(f"ours, {name}: {result}", flush=True)
  if not args.skip_torch:
    import torch

    rows.append(
      (
        f"transformers CLIPModel (torch {torch.__version__}, {args.threads} "
        "threads), flcp",
        pytorch(config, images, labels, class_names, args.steps, args.threads),
      )
    )
  print_tables(rows, names, args)


def print_tables(rows, names, args):
  """The step table (ours per method, PyTorch's FLCP) and each of our rows'
  FLOPs and fraction of the matmul."""
  first = rows[0][1]
  print(
    "| implementation | compile s | first step s | s / step | examples / s "
    f"| x {names[0]} | step / matmul | x {names[0]} (per matmul) |"
  )
  print("|---|---|---|---|---|---|---|---|")
  for name, r in rows:
    per_matmul = (
      f"{r['matmuls']:.2f} | {r['matmuls'] / first['matmuls']:.2f}"
      if "matmuls" in r
      else "- | -"
    )
    print(
      f"| {name} | {r['compile_s']:.1f} | {r['first_s']:.2f} | {r['step_s']:.3f} | "
      f"{args.batch / r['step_s']:.1f} | {r['step_s'] / first['step_s']:.2f} | "
      f"{per_matmul} |"
    )
  for (_, r), method in zip(rows, names):
    print(
      f"{method}: XLA cost analysis {r['flops'] / 1e9:.1f} GFLOP per step; "
      f"{r['gflops']:.1f} GFLOP/s, 4096x4096 float32 matmul "
      f"{r['matmul_gflops']:.1f} GFLOP/s (same run, interleaved): "
      f"fraction {r['fraction']:.2f} (by CPU time {r['cpu_fraction']:.2f})"
    )
    if r["mfu"] is not None:
      print(
        f"{method}: model FLOPs utilisation {100 * r['mfu']:.1f}% of "
        f"{args.peak_tflops} TFLOP/s"
      )
  if len(rows) > len(names) and "flcp" in names:
    flcp = rows[names.index("flcp")][1]["step_s"]
    print(f"speed-up over PyTorch (flcp): {rows[-1][1]['step_s'] / flcp:.2f}x")


if __name__ == "__main__":
  main()
