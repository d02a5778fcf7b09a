r"""Evaluate one model: heatmaps, RMA, PT/IR, per-sample records and a report.

    # a finished training run (rationality_jax.train workdir):
    python -m rationality_jax.main \
        --config=configs/evaluate.py:train_dir=/tmp/train_flcp,dataset=synthetic \
        --workdir=/tmp/eval_flcp
    # zero-shot of a checkpoint that models.load reads (trains nothing: ZS has 0 steps):
    python -m rationality_jax.main \
        --config=configs/evaluate.py:model=assets/demo_clip,dataset=synthetic \
        --workdir=/tmp/eval_zs

Arguments (``key=value`` after the colon, comma-separated):
  train_dir: a finished training workdir; its method and head are evaluated.
  model:     otherwise, a checkpoint path: its zero-shot head is evaluated.
  dataset:   synthetic (built in <workdir>/data) | cub | caltech101 | dogs |
             imagenet (built beforehand in ``--config.data_dir``).
  heatmap:   chefer (default) | rollout | gradcam | input_gradients |
             gradient_x_input | integrated_gradients.
  start_layer: first block of chefer / rollout (default 0: all blocks; -1: last).
  normalization: clip (default) | imagenet (the release's).
  name:      the run's name (default zs, or evaluation for train_dir).

Writes <workdir>/eval/<name>/ (records, summary.json, records.csv,
report.md) and the report of this one run in <workdir>. A killed evaluation
resumes when the same command runs again.

Expected, for ``model=assets/demo_clip,dataset=synthetic`` on 2 CPU cores:
about 2 minutes on a loaded 2-core machine (much of it compilation); exactly
the demo's ZS row: accuracy 62.40, PT 62.82, IR 65.77 (docs/demo.md).
"""

from rationality_jax import grid

SIZES = {"synthetic": 64}
BUILDERS = {
  "synthetic": "synthetic_rationality",
  "cub": "cub_200_2011",
  "caltech101": "caltech101_masks",
  "dogs": "stanford_dogs_masks",
  "imagenet": "imagenet2012_val_masks",
}


def get_config(arg=None):
  args = dict(
    train_dir="",
    model="",
    dataset="synthetic",
    heatmap="chefer",
    start_layer="0",
    normalization="clip",
    name="",
  )
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in args:
      raise ValueError(f"unknown argument {key!r}; known: {sorted(args)}.")
    args[key] = value
  if bool(args["train_dir"]) == bool(args["model"]):
    raise ValueError(
      "give exactly one of train_dir=<training workdir> or "
      "model=<checkpoint path> (zero-shot)."
    )
  from rationality_jax.data import preprocess

  keep = "|keep('image', 'mask', 'label', 'id')"
  name = args["dataset"]
  if name == "synthetic":
    pp = f"resize({SIZES[name]})|normalize({args['normalization']!r})"
    ds = grid.dataset(
      "synthetic_rationality",
      pp_eval=pp + keep,
      build=True,
      image_size=SIZES[name],
      train_size=2000,
      test_size=500,
    )
  else:
    pp = preprocess.study_spec(
      BUILDERS[name], normalization=args["normalization"]
    )
    ds = grid.dataset(
      BUILDERS[name],
      pp_eval=pp + keep,
      build=False,
      eval_split="validation" if name == "imagenet" else "test",
    )

  config = grid.config_file("train", "method=zs,model=tiny")
  train = config
  config = type(train)()
  config.mode = "evaluate"
  config.data_dir = ""
  config.models = {"model": args["model"]}
  config.datasets = {name: ds}
  train.checkpoint.async_save = False
  config.train = train
  heatmap_args = (
    {"start_layer": int(args["start_layer"])}
    if args["heatmap"] in ("chefer", "rollout")
    else {}
  )
  config.cells = [
    grid.cell(
      args["name"] or ("evaluation" if args["train_dir"] else "zs"),
      "model",
      name,
      "zs",
      heatmap=args["heatmap"],
      heatmap_args=heatmap_args,
      train_dir=args["train_dir"],
    )
  ]
  config.eval = dict(
    batch_size=64,
    batches_per_chunk=1,
    figure_images=4,
    threshold=0.5,
    input_threads=2,
  )
  config.report = dict(
    title="Evaluation",
    published=False,
    thresholds=[0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9],
  )
  return config
