r"""The demo: the whole study on the synthetic benchmark, on a laptop CPU.

    python -m rationality_jax.main --config=configs/demo.py --workdir=/tmp/demo

What runs (a `grid` over one model and one dataset):
  1. builds `synthetic_rationality` (shapes with exact masks; in `train` the
     background texture matches the class 90% of the time - a shortcut; in
     `test` it is independent of the class) in <workdir>/data;
  2. pretrains a small CLIP-architecture model contrastively on "a photo of a
     {shape}" captions of shortcut-free images (configs/demo_pretrain.py), or
     loads the shipped one (`pretrained` below; 'pretrain' = train it here);
  3. adapts it with ZS, LP, FLCP, FT, CoOp and CLIP-Adapter on the shortcut
     train split (rationality_jax.train, 60 steps each, batch 32);
  4. explains every test prediction (Chefer relevance over all blocks, the
     ground-truth class), scores RMA/RRA/pointing game against the mask,
     streams the per-sample records, and reports accuracy, PT, IR and the
     counts like the study's Tables 1-2 with figures (heatmap overlays, PT/IR
     against the validity threshold) in <workdir>/report.md and figures/.

Arguments (``key=value`` after the colon): ``quick=1`` is the end-to-end
test's reduced demo (ZS, LP and FT only, 10 steps each, 100 test images),
``pretrain=1`` pretrains here instead of loading the shipped model.

Expected on 2 CPU cores: 4.4 minutes wall on a loaded machine (141 s of CPU
time), peak memory 0.87 GB. Expected numbers (500 test images, threshold
0.5; full table in docs/demo.md), accuracy / PT / IR in %:
  zs 62.40 / 62.82 / 65.77     lp 60.20 / 55.48 / 58.60
  flcp 60.40 / 61.59 / 65.49   ft 55.20 / 44.57 / 57.48
  coop 62.60 / 61.66 / 66.55   adapter 63.40 / 64.04 / 68.81
FT and LP pick up the background shortcut of the train split: their PT falls
below ZS's (the study's headline: adaptation lowers PT).
"""

import os

from rationality_jax import grid

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED_MODEL = os.path.join(REPO, "assets", "demo_clip")
METHODS = ("zs", "lp", "flcp", "ft", "coop", "adapter")
# The demo's learning rates: 60 steps from a small model (the study's 1e-5 for
# FT/FLCP is for 10 epochs of a ViT-B).
LEARNING_RATES = {
  "zs": 0.0,
  "lp": 3e-3,
  "flcp": 3e-4,
  "ft": 3e-4,
  "coop": 3e-3,
  "adapter": 3e-3,
}


def get_config(arg=None):
  args = dict(quick="0", pretrain="0")
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in args:
      raise ValueError(f"unknown argument {key!r}; known: {sorted(args)}.")
    args[key] = value
  quick = args["quick"] == "1"

  config = grid.config_file("train", "method=zs,model=demo")
  train = config
  config = type(train)()
  config.mode = "grid"
  config.data_dir = ""
  config.pretrain = grid.config_file("demo_pretrain")
  config.pretrain.enabled = args["pretrain"] == "1" or not os.path.isdir(
    SHIPPED_MODEL
  )
  if quick:
    config.pretrain.steps = 100
  config.models = {
    "demo_clip": "pretrain" if config.pretrain.enabled else SHIPPED_MODEL
  }

  image_size = config.pretrain.model.image_size
  pp = f"resize({image_size})|normalize('clip')|keep('image', 'mask', 'label', 'id')"
  config.datasets = {
    "synthetic": grid.dataset(
      "synthetic_rationality",
      pp_eval=pp,
      pp_train=f"resize({image_size})|random_flip_lr|normalize('clip')|keep('image', 'label')",
      build=True,
      num_classes=4,
      image_size=image_size,
      train_size=2000,
      test_size=100 if quick else 500,
      shortcut_prob=0.9,
    )
  }

  train.batch_size = 32
  train.total_steps = 10 if quick else 60
  train.log_every = 20
  train.checkpoint.every_steps = 1000
  train.checkpoint.async_save = False
  config.train = train
  config.cells = [
    grid.cell(
      method,
      "demo_clip",
      "synthetic",
      method,
      heatmap="chefer",
      heatmap_args={"start_layer": 0},
      train={"optim": {"lr": LEARNING_RATES[method]}},
    )
    for method in (("zs", "lp", "ft") if quick else METHODS)
  ]
  config.eval = dict(
    batch_size=100,
    batches_per_chunk=1,
    figure_images=4,
    threshold=0.5,
    input_threads=2,
    run_figures=False,
  )
  config.report = dict(
    title="Demo: synthetic benchmark, small CLIP",
    published=False,
    thresholds=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
    notes="One model (a 2-block CLIP pretrained on shortcut-free "
    "shapes), adapted on a train split whose background "
    "predicts the class 90% of the time; the test split's "
    "background is independent of the class.",
  )
  return config
