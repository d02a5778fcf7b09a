r"""Sanity checks of the heatmaps: the cascading model-randomisation test.

    python -m rationality_jax.main \
        --config=configs/sanity.py:model=assets/demo_clip --workdir=/tmp/sanity

Arguments (``key=value`` after the colon, comma-separated):
  model:    a checkpoint path, a hub id or random:<arch> (its zero-shot head).
  train_dir: a finished training workdir instead (its method and head).
  dataset:  synthetic (default) | cub | caltech101 | dogs | imagenet.
  heatmaps: '+'-joined heatmaps to check (default: every registered one).
  images:   evaluation images the maps are compared on (default 32).

The image tower's blocks are re-initialised from the top down, one more per
step; each heatmap's maps are compared with the trained model's (Spearman
and SSIM, mean over the images). Writes sanity.json, sanity.png and
report.md. Expected on the demo model (2 blocks): Chefer, Grad-CAM and the
gradient maps decorrelate as the blocks are re-initialised; the `random`
control keeps Spearman 1 (its noise does not depend on the model) and is
flagged, as any map that describes the image rather than the model.
"""

import common


def get_config(arg=None):
  args = common.parse(
    arg, model="", train_dir="", dataset="", heatmaps="", images="32"
  )
  if bool(args["train_dir"]) == bool(args["model"]):
    raise ValueError(
      "give exactly one of model=<checkpoint> or train_dir=<training workdir>."
    )
  source = (
    f"train_dir={args['train_dir']}"
    if args["train_dir"]
    else f"model={args['model']}"
  )
  if args["dataset"]:
    source += f",dataset={args['dataset']}"
  config = common.load("evaluate", source)
  config.mode = "sanity"
  config.sanity.heatmaps = args["heatmaps"]
  config.sanity.images = int(args["images"])
  return config
