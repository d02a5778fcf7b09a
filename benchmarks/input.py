"""Input pipeline throughput: decoded, preprocessed examples/s at 224 px.

  python benchmarks/input.py [--examples 512] [--threads 1,2,4] [--workers 0]
      [--batch 32]

Writes a stand-in ILSVRC2012 validation set (smooth 500x375 RGB JPEGs, the
typical ImageNet size, quality 90, with LOC_val_solution.csv boxes) to a
temporary directory, builds `imagenet2012_val_masks` from it (array_record),
and measures, on this machine:
  - read + decode: `source[i]` (array_record read, JPEG image + PNG mask decode)
  - read + decode + preprocess (one thread), for the eval and train specs
  - the full pipeline (`make_iterator`, grain threads, global batches of
    --batch on the default mesh) for each --threads and --workers value
    (worker processes, `input_workers`; 0: threads in this process), timed
    from the second batch on (worker start-up excluded)
Prints a markdown table: examples/s and this process's CPU milliseconds per
example (user + system, all its threads, not its workers'). With workers, that
is what the main process spends to receive, batch and place each example: it
caps one process's input rate at 1000 / ms examples/s however many cores
decode (the whole-evaluation goal of docs/benchmarks.md needs about 830/s).
"""

from __future__ import annotations

import argparse
import io
import os
import tarfile
import tempfile

from machine import Timing  # benchmarks/machine.py, beside this script
import numpy as np
from PIL import Image

EVAL = "resize(256)|center_crop(224)|normalize('clip')"
TRAIN = (
  "random_resized_crop(224)|random_flip_lr|color_jitter(0.2, 0.2, 0.2, 0.2)|"
  "rotate(30)|normalize('clip')"
)


def write_fake_val(root: str, n: int, distinct: int | None = None) -> None:
  """`n` stand-in validation JPEGs (500x375) and their boxes under `root`.

  `distinct`: draw only that many images and write the later ones as copies
  of their bytes under their own names (image i is image i % distinct):
  decoding costs the same, writing thousands costs a fraction (drawing and
  encoding one takes ~15-50 ms). None: every image is drawn.
  """
  rng = np.random.default_rng(0)
  distinct = n if distinct is None else max(1, min(distinct, n))
  encoded = []
  wnids = __import__(
    "rationality_jax.data", fromlist=["imagenet_wnids"]
  ).imagenet_wnids()
  rows = ["ImageId,PredictionString"]
  yy, xx = np.mgrid[:375, :500]
  with tarfile.open(os.path.join(root, "ILSVRC2012_img_val.tar"), "w") as tar:
    for i in range(n):
      if i < distinct:
        a, b, c = rng.uniform(0.005, 0.05, 3)
        img = np.stack(
          [np.sin(xx * a + i), np.cos(yy * b), np.sin((xx + yy) * c)], -1
        )
        img = (
          ((img + 1) * 127.5 + rng.normal(0, 8, img.shape))
          .clip(0, 255)
          .astype(np.uint8)
        )
        buf = io.BytesIO()
        Image.fromarray(img).save(buf, format="JPEG", quality=90)
        encoded.append(buf.getvalue())
      jpeg = encoded[i % distinct]
      name = f"ILSVRC2012_val_{i + 1:08d}"
      info = tarfile.TarInfo(name + ".JPEG")
      info.size = len(jpeg)
      tar.addfile(info, io.BytesIO(jpeg))
      x0, y0 = rng.integers(0, 250), rng.integers(0, 180)
      rows.append(f"{name},{wnids[i % 1000]} {x0} {y0} {x0 + 200} {y0 + 150}")
  with open(os.path.join(root, "LOC_val_solution.csv"), "w") as f:
    f.write("\n".join(rows) + "\n")


def rate(fn, n: int) -> tuple[float, float]:
  """(examples/s, this process's CPU ms per example) of `fn`, n examples."""
  timing = Timing(fn)
  return n / timing.wall, 1e3 * timing.cpu / n


def main():
  parser = argparse.ArgumentParser()
  parser.add_argument("--examples", type=int, default=512)
  parser.add_argument("--threads", default="1,2,4")
  parser.add_argument("--workers", default="0")
  parser.add_argument("--batch", type=int, default=32)
  args = parser.parse_args()

  from rationality_jax import data

  with tempfile.TemporaryDirectory() as tmp:
    manual, data_dir = os.path.join(tmp, "manual"), os.path.join(tmp, "data")
    os.makedirs(manual)
    write_fake_val(manual, args.examples)
    data.build("imagenet2012_val_masks", data_dir, manual_dir=manual)
    src = data.get_source("imagenet2012_val_masks", "validation", data_dir)
    n = len(src)
    rows = [
      (
        "read + decode (500x375 JPEG + PNG mask)",
        "1",
        rate(lambda: [src[i] for i in range(n)], n),
      )
    ]
    for name, spec in (("eval", EVAL), ("train", TRAIN)):
      fn = data.preprocess.parse(spec)
      rows.append(
        (
          f"+ preprocess {name}: `{spec}`",
          "1",
          rate(
            lambda fn=fn: [
              fn(src[i], np.random.default_rng(i)) for i in range(n)
            ],
            n,
          ),
        )
      )
    combos = [
      (t, w)
      for w in (int(x) for x in args.workers.split(","))
      for t in (int(x) for x in args.threads.split(","))
    ]
    for name, spec in (("eval", EVAL), ("train", TRAIN)):
      for t, w in combos:
        it = data.make_iterator(
          src,
          spec,
          batch_size=args.batch,
          seed=0,
          shuffle=True,
          num_epochs=1,
          num_threads=t,
          num_workers=w,
        )
        steps = len(it)
        next(it)["image"].block_until_ready()  # start-up, untimed

        def consume(it=it):
          for batch in it:
            batch["image"].block_until_ready()

        rows.append(
          (
            f"pipeline {name} -> global batches of {args.batch}",
            f"{t} x {w}" if w else str(t),
            rate(consume, (steps - 1) * args.batch),
          )
        )
        it.close()

  print(f"\n{n} examples, {os.cpu_count()} CPUs\n")
  print(
    "| stage | threads (x worker processes) | examples/s | "
    "this process's CPU ms / example |"
  )
  print("|---|---|---|---|")
  for stage, threads, (r, ms) in rows:
    print(f"| {stage} | {threads} | {r:.0f} | {ms:.2f} |")


if __name__ == "__main__":
  main()
