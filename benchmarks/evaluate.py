"""End-to-end evaluation throughput, next to the heatmaps alone and a matmul.

  python benchmarks/evaluate.py [--model random:b16] [--images 256] [--batch 16]
      [--start-layer 0] [--dtype float32] [--reps 2]
      [--stages heatmaps,evaluation,ft]

Writes a stand-in ILSVRC2012 validation set (500x375 JPEGs with boxes, as
benchmarks/input.py) and builds `imagenet2012_val_masks` from it, then times,
in the same process:

  matmul      a 4096x4096 float32 matmul on CPU, 8192x8192 bfloat16 on an
              accelerator (`machine.matmul_reference`): the machine's measured
              matrix throughput, the reference of the fractions below (the
              best of a few)
  heatmaps    the jitted evaluation step alone (Chefer heatmap, RMA, RRA,
              pointing game) on one batch already on the device, repeated
  evaluation  `stream.evaluate_records` on the built split: read, decode,
              preprocess (Resize 256 + CenterCrop 224), heatmap, RMA, records
              written to disk; the input pipeline's threads and one batch in
              flight overlap it with the device
  ft step     one FT training step (`step.make_train_step`, Adam, the image
              tower and projection trainable), batch 32

and prints images/s, achieved GFLOP/s (XLA's cost analysis of each compiled
function), each as a fraction of the matmul's, the FT step's model FLOPs
utilisation (against the matmul), how much slower the whole evaluation is
than the heatmaps alone, and the projected time of 50,000 ImageNet images
at the measured evaluation rate. Compilation is excluded (a warm-up pass
first). The same script runs unchanged on a GPU. `--stages` picks a subset of
the rows after the matmul (e.g. `--stages ft` for the MFU alone, which skips
building the dataset); each row is printed as soon as it is measured.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time

from input import write_fake_val  # benchmarks/input.py, beside this script
import jax
import jax.numpy as jnp
from machine import FlopCount
from machine import Timing
from machine import add_host_memory_flag
from machine import apply_host_memory
from machine import matmul_reference
import numpy as np

from rationality_jax import data
from rationality_jax import explain
from rationality_jax import methods
from rationality_jax import models
from rationality_jax import sharding
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import optim
from rationality_jax.run import resolve
from rationality_jax.run import step as step_lib
from rationality_jax.run import stream

IMAGENET_VAL = 50_000
STAGES = ("heatmaps", "evaluation", "ft")


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--model", default="random:b16")
  parser.add_argument("--images", type=int, default=256)
  parser.add_argument("--batch", type=int, default=16)
  parser.add_argument("--start-layer", type=int, default=0)
  parser.add_argument("--dtype", default="float32")
  parser.add_argument("--reps", type=int, default=2)
  parser.add_argument("--train-batch", type=int, default=32)
  parser.add_argument(
    "--input-workers",
    type=int,
    default=0,
    help="evaluate.input_workers: decode in N processes (0: threads only)",
  )
  parser.add_argument(
    "--stages",
    default=",".join(STAGES),
    help=f"comma-separated subset of {','.join(STAGES)} to measure",
  )
  add_host_memory_flag(parser)
  args = parser.parse_args()
  stages = [s for s in args.stages.split(",") if s]
  unknown = sorted(set(stages) - set(STAGES))
  if unknown or not stages:
    parser.error(f"--stages {args.stages!r}: choose from {','.join(STAGES)}")
  apply_host_memory(args)

  module, params = models.load(args.model)
  module, params = models.with_precision(module, params, args.dtype, "float32")
  print(
    f"{args.model} at {module.config.vision.image_size} px, {args.dtype}, "
    f"Chefer start_layer {args.start_layer}, batch {args.batch}, "
    f"{args.images} images, {args.input_workers} input worker processes, "
    f"FT batch {args.train_batch}; device {jax.devices()[0].device_kind} "
    f"x{jax.device_count()}; host memory {args.host_memory}"
  )
  print(
    "| what | images/s | GFLOP/s | fraction of matmul | slower than heatmaps |"
  )
  print("|---|---|---|---|---|", flush=True)

  reference = matmul_reference()
  peak = max(
    reference.flops / reference.time().wall for _ in range(args.reps + 1)
  )
  print(f"| matmul | - | {peak / 1e9:.0f} | 1.00 | - |", flush=True)

  def row(what, rate, flops, slower="-"):  # printed as soon as measured
    cells = (what, f"{rate:.2f}", f"{rate * flops / 1e9:.0f}")
    cells += (f"{rate * flops / peak:.2f}", slower)
    print("| " + " | ".join(cells) + " |", flush=True)

  summary = []
  if "heatmaps" in stages or "evaluation" in stages:
    root = tempfile.mkdtemp(prefix="bench_evaluate_")
    try:
      measured = evaluation_rows(args, stages, module, params, root, row)
    finally:
      shutil.rmtree(root, ignore_errors=True)
    summary.append(f"heatmap {measured['heat_flops'] / 1e9:.1f} GFLOP/image")
    if measured["eval_rate"] is not None:
      summary.append(
        "50,000 ImageNet images at the evaluation rate: "
        f"{IMAGENET_VAL / measured['eval_rate'] / 60:.1f} min"
      )
  if "ft" in stages:
    # One FT step (the image tower + projection train), batch --train-batch.
    ft = ft_step(module, params, args.train_batch, args.reps)
    ft_rate, ft_flops = ft["images_per_s"], ft["flops_per_image"]
    row(f"ft step (batch {args.train_batch})", ft_rate, ft_flops)
    summary.append(
      f"FT step {ft_flops / 1e9:.1f} GFLOP/image, MFU "
      f"{ft_rate * ft_flops / peak:.2f} of the measured matmul"
    )
  print("\n" + "; ".join(summary))


def evaluation_rows(
  args, stages, module, params, root, row, cache: dict | None = None
) -> dict:
  """Builds the stand-in split under `root`, prints the heatmaps and/or
  evaluation rows (`row(what, rate, flops, slower)`).

  `args`: model, images, batch, start_layer, dtype, reps, input_workers and
  optionally distinct (`write_fake_val`'s) and warmup (False: no shorter
  run before the timed ones). A split already built under
  `root` (by an earlier call with the same images) is reused; with a `cache`
  dict, so is the explainer (and with it the compiled step) of an earlier
  call with the same module, params and start layer.

  Returns {'heat_flops' (per image), 'compile_s' (the step's first call),
  'heat_rate', 'eval_rate' (images/s, None when not measured), 'eval_seconds'
  (each timed whole evaluation of the split), 'warmup_images',
  'warmup_seconds' (the first, shorter whole evaluation: the pipeline's
  start-up and that many images; absent without one), 'images' (the
  split's size)}.
  """
  manual = os.path.join(root, "manual")
  if not os.path.exists(os.path.join(manual, "LOC_val_solution.csv")):
    os.makedirs(manual, exist_ok=True)
    write_fake_val(manual, args.images, getattr(args, "distinct", None))
  data.build("imagenet2012_val_masks", os.path.join(root, "data"), manual)
  source = data.get_source(
    "imagenet2012_val_masks", "validation", os.path.join(root, "data")
  )
  config = config_lib.default()
  config.model.update(path=args.model, dtype=args.dtype)
  family = models.family(module.config)
  spec = resolve.preprocess_spec(
    config,
    "imagenet2012_val_masks",
    module.config.vision.image_size,
    family.normalization,
    train=False,
    keep=("image", "mask", "label", "id"),
  )
  cache = {} if cache is None else cache
  key = ("evaluation_rows", id(module), id(params), args.start_layer)
  if key not in cache:
    num_classes = 1000
    head = {
      "class_embeddings": np.asarray(
        jax.random.normal(
          jax.random.key(1), (num_classes, module.config.embed_dim)
        )
      )
    }
    trained = checkpoints.zero_shot(module, params, head, {})
    explain_fn = explain.make_explainer(
      module,
      trained.classifier,
      explain.Chefer(start_layer=args.start_layer),
      jit=False,
    )
    cache[key] = trained, explain_fn
  trained, explain_fn = cache[key]
  step = stream.make_eval_step(explain_fn)

  # One batch on the device, placed as `stream.evaluate_records` places
  # them, so its calls of the same cached step reuse the executable compiled
  # here.
  pp = data.preprocess.parse(spec)
  batch = [pp(source[i], np.random.default_rng(0)) for i in range(args.batch)]
  local_mesh = sharding.local_mesh()
  params, head = jax.device_put(
    (trained.params, trained.head), sharding.replicated(local_mesh)
  )
  images, masks, labels = jax.device_put(
    (
      np.stack([b["image"] for b in batch]),
      np.stack([b["mask"] for b in batch]),
      np.array([b["label"] for b in batch], np.int32),
    ),
    sharding.batch_sharding(local_mesh),
  )
  count = FlopCount(step, params, head, images, labels, masks)
  # Compiles `step` (unless an earlier call with the same cache did): the
  # calls below, and the evaluation's, reuse the executable.
  start = time.perf_counter()
  compiled = step.lower(params, head, images, labels, masks).compile()
  jax.block_until_ready(step(params, head, images, labels, masks))
  compile_s = time.perf_counter() - start
  if (key, "flops", args.batch) not in cache:
    cache[key, "flops", args.batch] = count.result(compiled)
  heat_flops = cache[key, "flops", args.batch] / args.batch
  measured = {
    "heat_flops": heat_flops,
    "compile_s": compile_s,
    "heat_rate": None,
    "eval_rate": None,
    "images": len(source),
  }
  heat_rate = None
  if "heatmaps" in stages:  # the jitted step alone, repeated
    heat_s = float(
      np.median(
        [
          Timing(
            lambda: jax.block_until_ready(
              step(params, head, images, labels, masks)
            )
          ).wall
          for _ in range(args.reps + 1)
        ]
      )
    )
    heat_rate = args.batch / heat_s
    measured["heat_rate"] = heat_rate
    row("heatmaps", heat_rate, heat_flops)
  if "evaluation" not in stages:
    return measured

  def whole(out_dir, count=None):
    subset = (
      source
      if count is None
      else data.Subset(source, np.arange(min(count, len(source))))
    )
    stream.evaluate_records(
      explain_fn,
      trained,
      subset,
      out_dir,
      spec=spec,
      batch_size=args.batch,
      name="bench",
      num_threads=max((os.cpu_count() or 1) // max(args.input_workers, 1), 2),
      num_workers=args.input_workers,
    )

  run = os.path.join(root, f"run{len(os.listdir(root))}")  # not reused
  if getattr(args, "warmup", True):
    warmup_images = min(2 * args.batch, len(source))
    measured["warmup_images"] = warmup_images
    measured["warmup_seconds"] = Timing(
      lambda: whole(os.path.join(run, "warmup"), count=warmup_images)
    ).wall
  times = []
  for rep in range(args.reps):
    out = os.path.join(run, f"eval{rep}")
    start = time.perf_counter()
    whole(out)
    times.append(time.perf_counter() - start)
  eval_rate = len(source) / float(np.median(times))
  slower = (
    "-" if heat_rate is None else f"{100 * (heat_rate / eval_rate - 1):+.0f}%"
  )
  row("evaluation (read .. records)", eval_rate, heat_flops, slower)
  measured.update(eval_rate=eval_rate, eval_seconds=times)
  return measured


def ft_step(
  module, params, batch_size: int, reps: int, on_compiled=None
) -> dict:
  """One FT step with Adam at `batch_size`, timed `reps` times after a first
  call: {'images_per_s', 'flops_per_image' (XLA:CPU's count, taken on a
  thread while the device compiles), 'compile_s', 'first_s' (the first call
  after compiling), 'seconds' (each timed step)}. `on_compiled(seconds)` is
  called once the step is compiled."""
  config = config_lib.default()
  config.method = "ft"
  config.train.optim.lr = 1e-5
  method = methods.METHODS["ft"]
  size = module.config.vision.image_size
  features = module.config.embed_dim
  head = {
    "kernel": np.zeros((features, 1000), np.float32),
    "bias": np.zeros((1000,), np.float32),
  }
  trainable = {"params": params, "head": head}
  labels = optim.trainable_labels(
    trainable, method.trainable(config, module.config)
  )
  schedule = optim.schedule(config.train.optim, 100)
  tx = optim.make_optimizer(config.train.optim, labels, 100)
  state = {
    "step": jnp.zeros((), jnp.int32),
    **trainable,
    "opt_state": tx.init(trainable),
    "rng": jax.random.key(0),
  }
  raw_step = step_lib.make_train_step(
    method, module, config, tx, labels, schedule
  )
  step = jax.jit(raw_step, donate_argnums=(0,))
  rng = np.random.default_rng(0)
  batch = {
    "image": jnp.asarray(
      rng.normal(size=(batch_size, size, size, 3)).astype(np.float32)
    ),
    "label": jnp.asarray(rng.integers(0, 1000, batch_size).astype(np.int32)),
  }
  count = FlopCount(raw_step, state, batch, {})
  start = time.perf_counter()
  compiled = step.lower(state, batch, {}).compile()
  compile_s = time.perf_counter() - start
  if on_compiled is not None:
    on_compiled(compile_s)
  start = time.perf_counter()
  state, metrics = compiled(state, batch, {})
  jax.block_until_ready(metrics)
  first_s = time.perf_counter() - start
  times = []
  for _ in range(reps):
    start = time.perf_counter()
    state, metrics = compiled(state, batch, {})
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  return {
    "images_per_s": batch_size / float(np.median(times)),
    "flops_per_image": count.result(compiled) / batch_size,
    "compile_s": compile_s,
    "first_s": first_s,
    "seconds": times,
  }


if __name__ == "__main__":
  main()
