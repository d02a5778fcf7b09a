"""The datasets by name: one builder module each, registered in `DATASETS`.

  DATASETS["cub_200_2011"]                 # the builder class
  sorted(DATASETS)                         # every registered dataset
  DATASETS.register("my_lab.coco_masks")   # a builder module outside the package
  builder_class("cub")                     # ValueError naming the registered ones
  report_key("imagenet_c_masks")           # 'imagenet': its column in the tables

A dataset is its builder module in `rationality_jax/data/builders/` (a
`base.MaskedImageBuilder`; the module declares ``DATASET = <the class>``,
registered under the class's TFDS ``name``) plus its name in `MODULES`
(`rationality_jax.registry`, the one registration style of every plug-in).
The modules are imported on first use, not when this one is.
"""

from __future__ import annotations

from rationality_jax import registry

# The builder modules of `rationality_jax.data.builders`, in the order of the
# study's tables (ImageNet, Caltech-101, Stanford Dogs, CUB), then the
# synthetic benchmark.
MODULES = (
  "imagenet2012_val_masks",
  "imagenet2012_train",
  "imagenet_c_masks",
  "caltech101_masks",
  "stanford_dogs_masks",
  "cub_200_2011",
  "synthetic_rationality",
)

DATASETS: registry.Registry = registry.Registry(
  "dataset", "rationality_jax.data.builders", MODULES, "DATASET"
)


def builder_class(name: str):
  """The builder class of dataset `name`; a ValueError names the registered
  datasets when no builder has that name."""
  if name not in DATASETS:
    raise ValueError(f"Unknown dataset {name!r}; known: {sorted(DATASETS)}.")
  return DATASETS[name]


def report_key(name: str) -> str:
  """The dataset's key in the study's tables: its builder's `REPORT_KEY`
  ('imagenet' for ImageNet val and ImageNet-C), else its name (also for a
  name no builder has, such as a failed cell's)."""
  if name not in DATASETS:
    return name
  return DATASETS[name].REPORT_KEY or name
