"""Datasets with object masks: TFDS builders, joint preprocessing, input pipeline.

Build once (array_record, no TensorFlow), read back, iterate global batches:

  from rationality_jax import data
  data.build("synthetic_rationality", data_dir)                    # generated
  data.build("cub_200_2011", data_dir, manual_dir="/archives/cub")  # from archives
  source = data.get_source("cub_200_2011", "test", data_dir)
  source[i]  # {image [H,W,3] uint8, mask [H,W] uint8, label int32, id str, boxes [N,4] float32}
  source.skipped                                   # {reason: count} left out by the build
  data.Subset(source, positions)                   # a view of some examples
  data.read_columns(name, split, data_dir)         # {label, id} arrays, no image decoded
  it = data.make_iterator(source, "resize(256)|center_crop(224)|normalize('clip')",
                          batch_size=64, seed=0, shuffle=False, num_epochs=1)
  for batch in it:   # image [B,224,224,3] f32, mask [B,224,224] u8, label [B] i32,
      ...            # index [B] i32, valid [B] bool (jax.Arrays on the 'data' axis); id: host numpy
  state = it.get_state(); it.set_state(state)      # or it.save(dir) / it.restore(dir)
  names = data.class_names("cub_200_2011", source.class_names)
  prompts = data.prompts(names, "study")           # or "clip80"

Datasets (`data.DATASETS`, one builder module each, `data.datasets`):
synthetic_rationality, cub_200_2011, caltech101_masks, stanford_dogs_masks,
imagenet2012_val_masks, imagenet_c_masks, imagenet2012_train (no masks);
`data.DATASETS.register("my_lab.coco_masks")` adds a builder module from
outside the package; `data.report_key(name)` is a dataset's key in the
study's tables ('imagenet', 'caltech101', 'dogs', 'cub', 'synthetic'),
`data.study_datasets()` how the study trains and evaluates on each.
Builder options are keyword arguments of `build` and
`get_source` (e.g. `on_bad_image="skip"`, `on_missing="skip"`,
`on_bad_annotation="skip"`,
`boxes="last"`, `split_scheme="release"`); `source.skipped` counts what a
build left out. Preprocessing ops:
`data.preprocess.registered_ops()`. `data.preprocess.study_spec(dataset,
train=False, normalization="clip", mask_order="ours")` gives the study's spec
string per dataset; the release's data choices are named options
(`data.release`). See docs/data.md.
"""

from rationality_jax.data import preprocess
from rationality_jax.data import release
from rationality_jax.data.classnames import class_names
from rationality_jax.data.classnames import imagenet_wnids
from rationality_jax.data.classnames import prompts
from rationality_jax.data.classnames import templates
from rationality_jax.data.datasets import DATASETS
from rationality_jax.data.datasets import builder_class
from rationality_jax.data.datasets import report_key
from rationality_jax.data.datasets import study_builder_kwargs
from rationality_jax.data.datasets import study_datasets
from rationality_jax.data.pipeline import GlobalBatchIterator
from rationality_jax.data.pipeline import make_iterator
from rationality_jax.data.sources import Source
from rationality_jax.data.sources import Subset
from rationality_jax.data.sources import build
from rationality_jax.data.sources import get_builder
from rationality_jax.data.sources import get_source
from rationality_jax.data.sources import read_columns

__all__ = [
  "DATASETS",
  "GlobalBatchIterator",
  "Source",
  "Subset",
  "build",
  "builder_class",
  "class_names",
  "get_builder",
  "get_source",
  "imagenet_wnids",
  "make_iterator",
  "preprocess",
  "prompts",
  "read_columns",
  "release",
  "report_key",
  "study_builder_kwargs",
  "study_datasets",
  "templates",
]
