"""The dataset registry: the package's builders, and one from outside it."""

import sys
import textwrap

import numpy as np
import pytest

from rationality_jax import data
from rationality_jax.data import datasets
from rationality_jax.data import pipeline

# A builder module outside the package: 5 train / 3 test examples, each a
# 4 x 6 image that is 10 * (index + 1) on a 2 x 3 object and 0 elsewhere.
TOY_MODULE = """
import numpy as np
import tensorflow_datasets as tfds

from rationality_jax.data.builders import base
from rationality_jax.data.builders import common

SIZES = {"train": 5, "test": 3}


class ToyMaskedShapes(base.MaskedImageBuilder, skip_registration=True):
  name = "toy_masked_shapes"
  VERSION = tfds.core.Version("1.0.0")

  def _info_features(self):
    return common.features(["thing_one", "thing_two"])

  def _make_splits(self, dl_manager):
    return {split: self._generate_examples(split, n) for split, n in SIZES.items()}

  def _generate_examples(self, split, n):
    for i in range(n):
      mask = np.zeros((4, 6), np.uint8)
      mask[1:3, 2:5] = 1
      image = np.repeat(mask[..., None] * 10 * (i + 1), 3, axis=-1)
      yield f"{split}_{i}", {
        "image": common.encode_png(image),
        "mask": common.mask_feature(mask),
        "label": i % 2,
        "id": f"{split}_{i}",
        "boxes": common.mask_box(mask),
      }


DATASET = ToyMaskedShapes
"""


@pytest.fixture
def toy(tmp_path, monkeypatch):
  """`toy_datasets.shapes` on the path; the registry as it was afterwards."""
  package = tmp_path / "toy_datasets"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "shapes.py").write_text(textwrap.dedent(TOY_MODULE))
  monkeypatch.syspath_prepend(str(tmp_path))
  monkeypatch.setattr(
    datasets.DATASETS, "_modules", list(datasets.DATASETS._modules)
  )
  monkeypatch.setattr(datasets.DATASETS, "_loaded", None)
  yield "toy_datasets.shapes"
  for key in [k for k in sys.modules if k.startswith("toy_datasets")]:
    del sys.modules[key]


def test_the_package_registers_one_builder_per_module():
  assert list(data.DATASETS) == list(datasets.MODULES)
  for name, cls in data.DATASETS.items():
    assert cls.name == name
    assert cls.__module__ == f"rationality_jax.data.builders.{name}"
  with pytest.raises(ValueError, match="Unknown dataset 'cub'; known: "):
    data.builder_class("cub")


def test_report_keys_are_the_study_tables_columns():
  assert {name: data.report_key(name) for name in data.DATASETS} == {
    "imagenet2012_val_masks": "imagenet",
    "imagenet2012_train": "imagenet2012_train",
    "imagenet_c_masks": "imagenet",
    "caltech101_masks": "caltech101",
    "stanford_dogs_masks": "dogs",
    "cub_200_2011": "cub",
    "synthetic_rationality": "synthetic",
  }
  assert data.report_key("no_such_builder") == "no_such_builder"


def test_the_study_datasets_are_declared_by_their_builders():
  study = data.study_datasets()
  assert list(study) == ["imagenet", "caltech101", "dogs", "cub", "synthetic"]
  assert study["imagenet"] == (
    "imagenet2012_train",
    "train",
    "imagenet2012_val_masks",
    "validation",
  )
  assert study["dogs"] == ("stanford_dogs_masks", "train", "", "test")
  assert study["synthetic"] == ("synthetic_rationality", "train", "", "test")
  assert data.study_builder_kwargs("synthetic") == dict(
    num_classes=4,
    image_size=64,
    train_size=2000,
    test_size=500,
    shortcut_prob=0.9,
  )
  assert data.study_builder_kwargs("cub") == {}
  with pytest.raises(KeyError, match="no study dataset 'imagenet_c'"):
    data.study_builder_kwargs("imagenet_c")


def test_a_builder_from_outside_the_package_builds_and_reads(toy, tmp_path):
  cls = data.DATASETS.register(toy)
  assert cls.name == "toy_masked_shapes"
  assert data.builder_class("toy_masked_shapes") is cls
  assert sorted(data.DATASETS)[-1] == "toy_masked_shapes"
  builder = data.build("toy_masked_shapes", tmp_path / "tfds")
  assert builder.info.splits["train"].num_examples == 5
  source = data.get_source("toy_masked_shapes", "test", tmp_path / "tfds")
  examples = sorted(
    (source[i] for i in range(len(source))), key=lambda e: e["id"]
  )
  assert [e["id"] for e in examples] == ["test_0", "test_1", "test_2"]
  assert [int(e["label"]) for e in examples] == [0, 1, 0]
  assert [int(e["image"].max()) for e in examples] == [10, 20, 30]
  assert int(examples[0]["mask"].sum()) == 6
  np.testing.assert_array_equal(examples[0]["boxes"], [[2, 1, 5, 3]])
  # The base builder's facts apply to a builder that declares none.
  names = data.class_names("toy_masked_shapes", source.class_names)
  assert names == ["thing_one", "thing_two"]
  with pytest.raises(ValueError, match="needs the builder's label names"):
    data.class_names("toy_masked_shapes", rule="release")
  assert data.report_key("toy_masked_shapes") == "toy_masked_shapes"
  assert "toy_masked_shapes" not in data.study_datasets()  # it declares none
  for order in ("ours", "release"):
    assert data.preprocess.study_spec(
      "toy_masked_shapes", mask_order=order
    ) == ("resize(224)|center_crop(224)|normalize('clip')")


def test_a_worker_process_reopens_a_builder_from_outside(toy, tmp_path):
  data.DATASETS.register(toy)
  data.build("toy_masked_shapes", tmp_path / "tfds")
  source = data.get_source("toy_masked_shapes", "train", tmp_path / "tfds")
  kw = dict(batch_size=2, mesh=None, shuffle=False, num_epochs=1)
  threads = pipeline.make_iterator(source, "keep('image', 'id')", **kw)
  # The worker process starts with the package's datasets only: unpickling
  # the source registers the toy's module there.
  workers = pipeline.make_iterator(
    source, "keep('image', 'id')", num_workers=1, **kw
  )
  try:
    for a, b in zip(threads, workers, strict=True):
      np.testing.assert_array_equal(a["id"], b["id"])
      np.testing.assert_array_equal(a["image"], b["image"])
  finally:
    workers.close()
