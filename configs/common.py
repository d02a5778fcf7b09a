"""What every config shares: argument parsing, the run config, the study's tables.

Config files import it as ``import common`` (`rationality_jax.main` puts the
config file's folder on the path, as Python does for a script):

  args = common.parse(arg, method="flcp", model="random:tiny")
  config = common.run_config(mode="train", method=args["method"])

The run config itself (every field, documented) is
`rationality_jax.config.default`.
"""

from __future__ import annotations

import ml_collections

from rationality_jax import config as config_lib
from rationality_jax import optim

# The release's learning rates (FLCP, FT 1e-5; LP 1e-3); CoOp, adapter: ours.
STUDY_LR = {
  "zs": 0.0,
  "lp": 1e-3,
  "ft": 1e-5,
  "flcp": 1e-5,
  "coop": 2e-3,
  "adapter": 1e-3,
  "wise_ft": 0.0,
}
# The study's datasets: table key -> (train builder, train split, eval
# builder, eval split).
STUDY_DATASETS = {
  "imagenet": (
    "imagenet2012_train",
    "train",
    "imagenet2012_val_masks",
    "validation",
  ),
  "caltech101": ("caltech101_masks", "train", "", "test"),
  "dogs": ("stanford_dogs_masks", "train", "", "test"),
  "cub": ("cub_200_2011", "train", "", "test"),
}
# Synthetic benchmark defaults (generated in <workdir>/data): 4 shapes, 64 px,
# backgrounds tied to the class in 90% of train images, independent in test.
SYNTHETIC = dict(
  num_classes=4,
  image_size=64,
  train_size=2000,
  test_size=500,
  shortcut_prob=0.9,
)
RECIPES = {
  "study": optim.study_preset,
  "adamw_cosine": optim.adamw_cosine_preset,
}


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


def run_config(**overrides) -> ml_collections.ConfigDict:
  """The run config (`rationality_jax.config.default`) with dotted overrides."""
  config = config_lib.default()
  for path, value in overrides.items():
    config_lib.set_path(config, path.replace("__", "."), value)
  return config


def dataset(name: str, **builder_kwargs) -> ml_collections.ConfigDict:
  """A grid's datasets entry: 'synthetic' or a `STUDY_DATASETS` key."""
  if name == "synthetic":
    kwargs = dict(SYNTHETIC, **builder_kwargs)
    return config_lib.dataset_section("synthetic_rationality", **kwargs)
  train_name, train_split, eval_name, eval_split = STUDY_DATASETS[name]
  return config_lib.dataset_section(
    train_name,
    train_split=train_split,
    eval_split=eval_split,
    eval_name=eval_name,
    **builder_kwargs,
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
