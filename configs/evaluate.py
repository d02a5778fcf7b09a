r"""Evaluate one model: heatmaps, RMA, PT/IR, per-sample records and a report.

    # the zero-shot head of a checkpoint (built directly; nothing trains):
    python -m rationality_jax.main \
        --config=configs/evaluate.py:model=/ckpt/ViT-B-16.pt --workdir=/tmp/eval_zs
    # a finished training run (configs/train.py workdir):
    python -m rationality_jax.main \
        --config=configs/evaluate.py:train_dir=/tmp/train_flcp --workdir=/tmp/eval_flcp

Arguments (``key=value`` after the colon, comma-separated):
  model:     a checkpoint path, a hub id or random:<arch>: its zero-shot head.
  train_dir: a finished training workdir: its method, head and data.
  dataset:   synthetic (generated in <workdir>/data) | cub | caltech101 |
             dogs | imagenet (prepared in --config.data.dir or built from
             --config.data.manual_dir); default: synthetic, or the training
             run's.
  heatmap:   chefer (default) | rollout | gradcam | input_gradients |
             gradient_x_input | integrated_gradients.
  start_layer: first block of chefer / rollout (default 0: all blocks; -1: last).
  normalization: model (default: the family's) | clip | imagenet (the release's).

Images are preprocessed at the model's size (its native one, or
``--config.model.image_size``). Writes the records, summary.json,
records.csv, report.md and figures to the workdir; a killed evaluation
resumes when the same command runs again, and rerunning it with another
model or heatmap in the same workdir is refused (``--fresh`` starts anew in
a subdirectory).

Expected, for ``model=assets/demo_clip`` (the demo's shipped model) on the
synthetic benchmark: exactly the demo's ZS row (docs/demo.md).
"""

import common


def get_config(arg=None):
  args = common.parse(
    arg,
    train_dir="",
    model="",
    dataset="",
    heatmap="chefer",
    start_layer="0",
    normalization="model",
  )
  if bool(args["train_dir"]) == bool(args["model"]):
    raise ValueError(
      "give exactly one of train_dir=<training workdir> or "
      "model=<checkpoint> (zero-shot)."
    )
  config = common.run_config(mode="evaluate", method="zs")
  config.model.path = args["model"]
  config.evaluate.train_dir = args["train_dir"]
  if args["train_dir"]:
    saved = common.training_run_config(args["train_dir"])
    config.model = saved.model
    config.method = saved.method
    config.name = saved.name
    config.train_data = saved.train_data
    config.eval_data = saved.eval_data
    config.data = saved.data
    if not config.data.dir:  # the run's datasets, where it built them
      config.data.dir = f"{args['train_dir'].rstrip('/')}/data"
  if args["dataset"] or not args["train_dir"]:
    common.use_dataset(config, args["dataset"] or "synthetic")
  config.heatmap.name = args["heatmap"]
  config.heatmap.start_layer = int(args["start_layer"])
  config.preprocess.normalization = args["normalization"]
  config.report.title = "Evaluation"
  return config
