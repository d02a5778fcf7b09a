r"""The release's quirks one at a time: how much of a table is evaluation code.

    python -m rationality_jax.main --config=configs/quirks.py:dataset=synthetic \
        --workdir=/tmp/quirks
    python -m rationality_jax.main --config=configs/quirks.py:dataset=cub \
        --workdir=/tmp/quirks_cub --config.data.manual_dir=/archives/cub \
        --config.models.clip_b16.path=/ckpt/ViT-B-16.pt

For every method, a baseline cell with our defaults (`configs/paper.py`'s
``default`` preset: the family's mean/std, Chefer over all blocks, every
option at ours), and beside it one cell per release quirk with that quirk
alone switched on (`common.release_quirks`: the options, and the release
file each reproduces, in docs/release.md). Same model, same recipe; a cell
whose quirk does not change training shares its baseline's training run.
The report (report.md) adds a table of what each quirk moves - accuracy,
PT and IR, in percentage points, per cell and on average - and a figure
(figures/quirks.png). It answers how much of the published tables is the
method and how much the evaluation code.

Arguments (``key=value`` after the colon, comma-separated):
  dataset: synthetic (default: the demo's model on the synthetic benchmark,
           built in <workdir>/data, a few minutes on a CPU) | cub |
           caltech101 | dogs | imagenet (the study's datasets, from
           --config.data.dir or built from --config.data.manual_dir; the
           model is --config.models.clip_b16.path).
  methods: '+'-joined from zs, lp, flcp, ft (default all four).
  quirks:  '+'-joined names of `common.RELEASE_QUIRKS` (default: every one
           that applies to the dataset). A quirk is left out of a cell it
           does not apply to ("n/a" in the tables: the release never did it
           there) or where it changes nothing (its options already hold).
  fp16:    forced (default): the fp16 quirk computes in float16 on any
           backend (``model.dtype``), so a CPU measures it too; accelerator:
           the release's option itself (``model.accelerator_dtype``), a
           no-op on CPU.
  test_size: synthetic test images (default 200).

Expected (docs/release.md has the measured tables): on the synthetic
benchmark the normalization, the untrained head (LP/FT accuracy falls to
chance, and PT/IR with it) and the heatmap layers move the numbers;
empty_mask, nan_map and mask_order move nothing there (no empty mask, no
constant map, exact masks). On CUB mask_order and split_order move them too.
"""

import common
import demo

from rationality_jax import report
from rationality_jax import resources
from rationality_jax.run import cells as cells_lib

METHODS = ("zs", "lp", "flcp", "ft")
DATASETS = ("synthetic", "cub", "caltech101", "dogs", "imagenet")
MODEL = "clip_b16"  # the study's datasets; the synthetic one: demo_clip
FP16 = ("forced", "accelerator")


def _subset(value: str, choices, name: str) -> list[str]:
  chosen = [v for v in value.split("+") if v]
  unknown = sorted(set(chosen) - set(choices))
  if unknown:
    raise ValueError(f"unknown {name} {unknown}; choose from {list(choices)}.")
  return [c for c in choices if c in chosen]


def _base(dataset: str, test_size: int):
  """(grid config without cells, model name, learning rates per method)."""
  run = common.run_config()
  run.heatmap.start_layer = 0  # ours: one heatmap (all blocks) for all
  if dataset == "synthetic":
    run.preprocess.update(train="flip", eval="resize")
    run.train.update(batch_size=32, total_steps=30, log_every=10)
    run.train.checkpoint.update(every_steps=1000, async_save=False)
    run.evaluate.update(batch_size=100, figure_images=4, figures=False)
    config = cells_lib.grid(run)
    config.models.demo_clip = cells_lib.model_section(
      str(resources.demo_model()), name="demo_clip"
    )
    config.datasets.synthetic = common.dataset(
      "synthetic", test_size=test_size, train_size=2000
    )
    return config, "demo_clip", demo.LEARNING_RATES
  run.evaluate.update(batch_size=64, batches_per_chunk=4, figure_images=4)
  config = cells_lib.grid(run)
  config.models[MODEL] = cells_lib.model_section(name=MODEL, image_size=224)
  config.datasets[dataset] = common.dataset(dataset)
  return config, MODEL, {m: common.study_lr(m) for m in METHODS}


def _changes(config, cell, overrides: dict) -> bool:
  """Whether `overrides` change anything in `cell`'s run config."""
  run = cells_lib.for_cell(config, cell)
  for key, value in overrides.items():
    target = run
    parts = key.split(".")
    for part in parts[:-1]:
      target = target[part]
    if parts[-1] not in target or target[parts[-1]] != value:
      return True
  return False


def get_config(arg=None):
  args = common.parse(
    arg,
    dataset="synthetic",
    methods="+".join(METHODS),
    quirks="+".join(common.RELEASE_QUIRKS),
    fp16="forced",
    test_size="200",
  )
  if args["dataset"] not in DATASETS:
    raise ValueError(f"dataset={args['dataset']!r}; choose from {DATASETS}.")
  if args["fp16"] not in FP16:
    raise ValueError(f"fp16={args['fp16']!r}; choose from {FP16}.")
  dataset = args["dataset"]
  methods = _subset(args["methods"], METHODS, "methods")
  wanted = _subset(args["quirks"], tuple(common.RELEASE_QUIRKS), "quirks")
  config, model, rates = _base(dataset, int(args["test_size"]))
  cells = []
  for method in methods:
    baseline = cells_lib.cell(
      method, model, dataset, method=method, **{"train.optim.lr": rates[method]}
    )
    quirks = {}
    for quirk, overrides in common.release_quirks(
      dataset, method, "clip"
    ).items():
      if quirk == "fp16" and args["fp16"] == "forced":
        overrides = {"model.dtype": "float16"}
      if quirk in wanted and _changes(config, baseline, overrides):
        quirks[quirk] = overrides
    sources = {
      q: f"{common.RELEASE_QUIRKS[q][1]} ({common.RELEASE_QUIRKS[q][0]})"
      for q in quirks
    }
    cells += report.quirk_cells(baseline, quirks, sources)
  config.cells = cells
  config.preset = "default"
  notes = (
    "Baselines: our defaults. Each other cell switches one release quirk on "
    "(docs/release.md); the last sections say how much each moves accuracy, "
    "PT and IR."
  )
  if args["fp16"] == "forced":
    notes += (
      " fp16 is measured with model.dtype = float16 on any backend (the "
      "release's own option, model.accelerator_dtype, is a no-op on CPU)."
    )
  config.report.update(
    title=f"Release quirks, one at a time ({dataset})", notes=notes
  )
  return config
