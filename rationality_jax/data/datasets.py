"""The datasets by name: one builder module each, registered in `DATASETS`.

  DATASETS["cub_200_2011"]                 # the builder class
  sorted(DATASETS)                         # every registered dataset
  DATASETS.register("my_lab.coco_masks")   # a builder module outside the package
  builder_class("cub")                     # ValueError naming the registered ones
  report_key("imagenet_c_masks")           # 'imagenet': its column in the tables
  study_datasets()["imagenet"]             # ('imagenet2012_train', 'train',
                                           #  'imagenet2012_val_masks', 'validation')
  study_builder_kwargs("synthetic")        # the synthetic benchmark's options

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


def _study_builders() -> dict[str, type]:
  """{table key: builder class} of the builders that declare `STUDY`."""
  out = {}
  for name, cls in DATASETS.items():
    if cls.STUDY is None:
      continue
    key = report_key(name)
    if key in out:
      raise ValueError(
        f"{out[key].name} and {name} both declare the study's {key!r} "
        "dataset (STUDY); one builder declares each."
      )
    out[key] = cls
  return out


def study_datasets() -> dict[str, tuple[str, str, str, str]]:
  """{table key: (train builder, train split, eval builder, eval split)} of
  the study's datasets, as their builders declare them (`STUDY`), in the
  registry's order; the eval builder is '' when it is the train builder."""
  out = {}
  for key, cls in _study_builders().items():
    study = cls.STUDY
    train = study.train_builder or cls.name
    evaluated = "" if train == cls.name else cls.name
    out[key] = (train, study.train_split, evaluated, study.eval_split)
  return out


def study_builder_kwargs(key: str) -> dict:
  """The builder options of the study's dataset `key` (its builder's
  `STUDY.builder_kwargs`: the synthetic benchmark's size and shortcut)."""
  builders = _study_builders()
  if key not in builders:
    raise KeyError(f"no study dataset {key!r}; known: {sorted(builders)}.")
  return dict(builders[key].STUDY.builder_kwargs)
