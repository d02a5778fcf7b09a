r"""The demo: the whole study on the synthetic benchmark, on a laptop CPU.

    python -m rationality_jax.main --config=configs/demo.py --workdir=/tmp/demo

What runs (a grid over one model and one dataset):
  1. builds `synthetic_rationality` (shapes with exact masks; in `train` the
     background texture matches the class 90% of the time - a shortcut; in
     `test` it is independent of the class) in <workdir>/data;
  2. loads the shipped small CLIP-architecture model (`assets/demo_clip`,
     pretrained contrastively on "a photo of a {shape}" captions of
     shortcut-free images by configs/demo_pretrain.py), or pretrains it here
     (``pretrain=1``);
  3. adapts it with ZS, LP, FLCP, FT, CoOp and CLIP-Adapter on the shortcut
     train split (60 steps each, batch 32);
  4. explains every test prediction (Chefer relevance over all blocks, the
     ground-truth class), scores RMA/RRA/pointing game against the mask,
     streams the per-sample records, and reports accuracy, PT, IR and the
     counts like the study's Tables 1-2 with figures (heatmap overlays, PT/IR
     against the validity threshold) in <workdir>/report.md and figures/,
     and every test image with each method's heatmap, prediction, RMA and
     cell in <workdir>/report.html (open it in a browser; docs/driver.md).

Arguments (``key=value`` after the colon): ``quick=1`` is the end-to-end
test's reduced demo (ZS, LP and FT only, 10 steps each, 100 test images),
``pretrain=1`` pretrains here instead of loading the shipped model,
``seeds=3`` trains every adapted cell with 3 seeds (42, 43, 44): the report
gives each cell's mean and spread over the seeds (docs/demo.md).

Expected numbers (500 test images, threshold 0.5; full table and timings in
docs/demo.md): ZS's PT is above FT's and LP's - training on the shortcut
split makes the model right for the wrong reasons more often (the study's
headline: adaptation lowers PT).
"""

import common

from rationality_jax import resources
from rationality_jax.run import cells as cells_lib

METHODS = ("zs", "lp", "flcp", "ft", "coop", "adapter")
# The demo's learning rates: 60 steps from a small model (the study's 1e-5
# for FT/FLCP is for 10 epochs of a ViT-B).
LEARNING_RATES = {
  "zs": 0.0,
  "lp": 3e-3,
  "flcp": 3e-4,
  "ft": 3e-4,
  "coop": 3e-3,
  "adapter": 3e-3,
}


def get_config(arg=None):
  args = common.parse(arg, quick="0", pretrain="0", seeds="1")
  quick = args["quick"] == "1"
  run = common.run_config()
  run.preprocess.update(train="flip", eval="resize")
  run.train.update(batch_size=32, total_steps=10 if quick else 60, log_every=20)
  run.train.checkpoint.update(every_steps=1000, async_save=False)
  run.heatmap.start_layer = 0
  run.evaluate.update(
    batch_size=100,
    batches_per_chunk=1,
    figure_images=4,
    # report.html shows every test image's thumbnails (500 x 6 runs, some
    # 2 KB each): every sample that changes cell between ZS and a method.
    gallery_images=-1,
    input_threads=2,
    figures=False,
  )
  # The randomisation test of the demo's heatmap, flagged in the report.
  run.sanity.images = 16 if quick else 32
  config = cells_lib.grid(run)
  if int(args["seeds"]) > 1:
    config.seeds = tuple(range(run.seed, run.seed + int(args["seeds"])))
  pretrain = args["pretrain"] == "1"
  config.pretrain = common.load("demo_pretrain")
  config.pretrain.enabled = pretrain
  if quick:
    config.pretrain.steps = 100
  config.models.demo_clip = cells_lib.model_section(
    "pretrain" if pretrain else str(resources.demo_model()), name="demo_clip"
  )
  config.datasets.synthetic = common.dataset(
    "synthetic", test_size=100 if quick else 500, train_size=2000
  )
  config.cells = [
    cells_lib.cell(
      method,
      "demo_clip",
      "synthetic",
      method=method,
      **{"train.optim.lr": LEARNING_RATES[method]},
    )
    for method in (("zs", "lp", "ft") if quick else METHODS)
  ]
  config.report.update(
    title="Demo: synthetic benchmark, small CLIP",
    notes="One model (a 2-block CLIP pretrained on shortcut-free shapes), "
    "adapted on a train split whose background predicts the class 90% of "
    "the time; the test split's background is independent of the class.",
  )
  return config
