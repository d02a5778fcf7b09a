"""What every config shares: argument parsing, the run config, the study's tables.

Config files import it as ``import common`` (`rationality_jax.main` puts the
config file's folder on the path, as Python does for a script):

  args = common.parse(arg, method="flcp", model="random:tiny")
  config = common.run_config(mode="train", method=args["method"])

The run config itself (every field, documented) is
`rationality_jax.run.config.default`.
"""

from __future__ import annotations

import ml_collections

from rationality_jax import methods
from rationality_jax.run import cells as cells_lib
from rationality_jax.run import config as config_lib
from rationality_jax.run import optim

RECIPES = {
  "study": optim.study_preset,
  "adamw_cosine": optim.adamw_cosine_preset,
}

# The release's choices that change a number (docs/release.md): quirk ->
# (the release file it reproduces, what it does). `release_quirks` says
# which apply to a cell and the options that switch each on.
RELEASE_QUIRKS = {
  "mask_order": (
    "utils/CUB_dataset.py, test_rationale_vlm/clip_zs_flcp_*.py",
    "masks made as the release: CUB's soft segmentation resized "
    "bilinearly and kept where still 255; Caltech/Dogs masks resized "
    "bilinearly; ImageNet boxes drawn into the crop",
  ),
  "empty_mask": (
    "utils/xml_analysis.py eval_rma",
    "an empty mask scores RMA 0 / sum(H) = 0: invalid, in RW/WW",
  ),
  "nan_map": (
    "utils/xml_analysis.py show_image_relevance, eval_rma",
    "a constant relevance map normalizes to 0 / 0 = NaN, and NaN < 0.5 "
    "is False: valid evidence",
  ),
  "normalization": (
    "utils/*_dataset.py Normalize",
    "ImageNet mean/std for every model",
  ),
  "heatmap_layers": (
    "utils/xml_analysis.py interpret, utils/xml_analysis_lp.py",
    "Chefer relevance of the last block for ZS/FLCP, of all blocks for LP/FT",
  ),
  "fp16": (
    "utils/chefer_clip/clip.py, clip/clip.py load",
    "CLIP ZS/FLCP compute in float16 on GPU/TPU (float32 on CPU)",
  ),
  "frozen_head": (
    "finetune_vlm/lp_ft.py, my_util.py load_*_model",
    "LP/FT heads stay at their random initialisation (the optimiser is "
    "built before the head); not on ImageNet",
  ),
  "first_batches": (
    "test_rationale_vlm/clip_*_in.py",
    "ImageNet/ImageNet-C rationale: only the first 5 batches of 64 in "
    "ImageFolder order",
  ),
  "split_order": (
    "utils/CUB_dataset.py, utils/caltech101_dataset.py",
    "CUB: train_test_split.txt flags by position on the sorted file list; "
    "Caltech: test positions 1, 6, 11, ...",
  ),
  "caltech_contour": (
    "utils/caltech101_dataset.py",
    "Caltech contours one pixel right and down, OpenCV's fill",
  ),
  "caltech_background": (
    "utils/caltech101_dataset.py, my_util.py load_ct_dataset",
    "BACKGROUND_Google kept as an empty class 0 (102-way heads)",
  ),
  "dogs_last_box": (
    "utils/Stanford_Dogs_dataset.py",
    "only the last box of a multi-dog image is the mask",
  ),
  "dogs_box_fill": (
    "utils/Stanford_Dogs_dataset.py",
    "boxes filled with both corners included (cv2.rectangle)",
  ),
  "class_names": (
    "datasets/*/label_dict.json via my_util.py",
    "Dogs/Caltech prompt names as the release's label_dict.json",
  ),
  "imagenet_c_masks": (
    "test_rationale_vlm/clip_zs_flcp_in.py --dataset in-c",
    "ImageNet-C masks with the release's box arithmetic",
  ),
}
IMAGENET = ("imagenet", "imagenet_c")
# The release's ImageNet rationale: 5 batches of --batchsize_test 64 (README).
RELEASE_EVAL_BATCHES, RELEASE_EVAL_BATCH_SIZE = 5, 64


def release_quirks(dataset: str, method: str, family: str) -> dict[str, dict]:
  """{quirk: dotted overrides} of the release's choices for one cell.

  Only the quirks that apply to the cell: its dataset (a `STUDY_DATASETS`
  key, 'imagenet_c' or 'synthetic'), adaptation method and model family
  ('clip', 'albef', 'blip'). Builder options are
  ``train_data.builder_kwargs.<option>`` (the evaluation inherits them) or
  ``eval_data.builder_kwargs.<option>`` (ImageNet-C's own builder).
  """
  builder = "train_data.builder_kwargs."
  quirks = {}
  if dataset in ("cub", "caltech101", "dogs", "imagenet"):
    quirks["mask_order"] = {"preprocess.mask_order": "release"}
  quirks["empty_mask"] = {"evaluate.empty_mask": "release"}
  quirks["nan_map"] = {
    "heatmap.constant_map": "nan",
    "evaluate.nonfinite": "release",
  }
  quirks["normalization"] = {"preprocess.normalization": "imagenet"}
  last_block = method in ("zs", "flcp", "coop")  # CoOp's head is ZS-like
  quirks["heatmap_layers"] = {"heatmap.start_layer": -1 if last_block else 0}
  if family == "clip" and method in ("zs", "flcp"):
    quirks["fp16"] = {"model.accelerator_dtype": "float16"}
  if method in ("lp", "ft") and dataset not in IMAGENET:
    quirks["frozen_head"] = {"train.release_frozen_head": True}
  if dataset in IMAGENET:
    quirks["first_batches"] = {
      "evaluate.max_batches": RELEASE_EVAL_BATCHES,
      "evaluate.batch_size": RELEASE_EVAL_BATCH_SIZE,
    }
  if dataset == "cub":
    quirks["split_order"] = {builder + "split_order": "release"}
  if dataset == "caltech101":
    quirks["split_order"] = {builder + "split_scheme": "release"}
    quirks["caltech_contour"] = {builder + "contour": "release"}
    quirks["caltech_background"] = {builder + "background_class": True}
  if dataset == "dogs":
    quirks["dogs_last_box"] = {builder + "boxes": "last"}
    quirks["dogs_box_fill"] = {builder + "box_fill": "inclusive"}
  if dataset in ("caltech101", "dogs"):
    quirks["class_names"] = {"head.class_names": "release"}
  if dataset == "imagenet_c":
    quirks["imagenet_c_masks"] = {
      "eval_data.builder_kwargs.mask_style": "release"
    }
  return quirks


def builder_overrides(overrides: dict) -> tuple[dict, dict]:
  """(the ``*_data.builder_kwargs.*`` entries as {section: {option: value}},
  the other overrides)."""
  builders, rest = {}, {}
  for key, value in overrides.items():
    parts = key.split(".")
    if len(parts) == 3 and parts[1] == "builder_kwargs":
      builders.setdefault(parts[0], {})[parts[2]] = value
    else:
      rest[key] = value
  return builders, rest


def parse(arg: str | None, **defaults) -> dict:
  """'a=1,b=x' -> {name: value} over `defaults` (values stay strings).

  An unknown name is an error listing the known ones.
  """
  out = dict(defaults)
  for item in filter(None, (arg or "").split(",")):
    key, _, value = item.partition("=")
    if key not in defaults:
      raise ValueError(f"unknown argument {key!r}; known: {sorted(defaults)}.")
    out[key] = value
  return out


def study_lr(method: str) -> float:
  """The study recipe's learning rate of `method`, as its `Method` declares
  it (the release's FLCP, FT 1e-5 and LP 1e-3; CoOp's and the adapter's are
  ours)."""
  return methods.METHODS[method].study_lr


def run_config(**overrides) -> ml_collections.ConfigDict:
  """The run config (`rationality_jax.run.config.default`) with dotted overrides."""
  config = config_lib.default()
  for path, value in overrides.items():
    config_lib.set_path(config, path.replace("__", "."), value)
  return config


def __getattr__(name: str):
  """The study's datasets, as their builders declare them (read on first
  use: importing the builders costs a second that configs without datasets
  skip).

  STUDY_DATASETS: table key -> (train builder, train split, eval builder,
    eval split), 'synthetic' included (`data.study_datasets`).
  SYNTHETIC: the synthetic benchmark's builder options (4 shapes, 64 px,
    backgrounds tied to the class in 90% of train images, independent in
    test; `data.study_builder_kwargs`).
  """
  from rationality_jax import data

  if name == "STUDY_DATASETS":
    return data.study_datasets()
  if name == "SYNTHETIC":
    return data.study_builder_kwargs("synthetic")
  raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def dataset(name: str, **builder_kwargs) -> ml_collections.ConfigDict:
  """A grid's datasets entry: a `STUDY_DATASETS` key ('synthetic' too)."""
  from rationality_jax import data

  train_name, train_split, eval_name, eval_split = data.study_datasets()[name]
  kwargs = dict(data.study_builder_kwargs(name), **builder_kwargs)
  return cells_lib.dataset_section(
    train_name,
    train_split=train_split,
    eval_split=eval_split,
    eval_name=eval_name,
    **kwargs,
  )


def use_dataset(config: ml_collections.ConfigDict, name: str, **kwargs) -> None:
  """Sets a run config's train_data / eval_data to `dataset(name)`."""
  section = dataset(name, **kwargs)
  config.train_data = section.train_data
  config.eval_data = section.eval_data


def training_run_config(train_dir: str) -> ml_collections.ConfigDict:
  """The run config a training workdir was made with (its config.json)."""
  import json
  import os

  path = os.path.join(train_dir, "config.json")
  if not os.path.exists(path):
    raise ValueError(
      f"{train_dir} has no config.json: is it a configs/train.py workdir?"
    )
  with open(path) as f:
    return ml_collections.ConfigDict(json.load(f))


def load(name: str, arg: str | None = None) -> ml_collections.ConfigDict:
  """`get_config(arg)` of configs/<name>.py (a config built on another)."""
  import importlib

  return importlib.import_module(name).get_config(arg)
