"""A method and a dataset from outside the package: one module and one line each.

A temporary package holds `toy_plugins/method.py` (a linear probe whose head
starts scaled by its own option ``toy.scale``) and `toy_plugins/shapes.py`
(a masked-image builder). One `register` call each, and they train and
evaluate through the driver like the package's own; the method's options
enter the run config, its validation, its study learning rate and the
training fingerprint.
"""

import json
import sys
import textwrap

import numpy as np
import pytest

from rationality_jax import main
from rationality_jax import methods
from rationality_jax.data import datasets
from rationality_jax.run import config as config_lib
from rationality_jax.run import resolve
from rationality_jax.run import validate
from tests.conftest import load_config

METHOD_MODULE = """
import dataclasses

from rationality_jax.methods import lp


def init_head(init):
  head = lp.init_head(init)
  return dict(head, kernel=head["kernel"] * init.config.toy.scale)


METHOD = dataclasses.replace(
  lp.METHOD,
  name="toy",
  init_head=init_head,
  options={"scale": 1.0},
  section="toy",
  choices={},
  study_lr=0.02,
)
"""

DATASET_MODULE = """
import numpy as np
import tensorflow_datasets as tfds

from rationality_jax.data.builders import base
from rationality_jax.data.builders import common

SIZES = {"train": 8, "test": 6}


class ToyShapes(base.MaskedImageBuilder, skip_registration=True):
  name = "toy_shapes"
  VERSION = tfds.core.Version("1.0.0")

  def _info_features(self):
    return common.features(["square", "bar"])

  def _make_splits(self, dl_manager):
    return {s: self._generate_examples(s, n) for s, n in SIZES.items()}

  def _generate_examples(self, split, n):
    rng = np.random.default_rng(len(split))
    for i in range(n):
      label = i % 2
      mask = np.zeros((16, 16), np.uint8)
      if label:
        mask[6:10, 2:14] = 1
      else:
        mask[4:12, 4:12] = 1
      image = rng.integers(0, 60, (16, 16, 3)).astype(np.uint8)
      image[mask == 1] = 200
      yield f"{split}_{i}", {
        "image": common.encode_png(image),
        "mask": common.mask_feature(mask),
        "label": label,
        "id": f"{split}_{i}",
        "boxes": common.mask_box(mask),
      }


DATASET = ToyShapes
"""


@pytest.fixture
def plugins(tmp_path, monkeypatch):
  """toy_plugins.method and toy_plugins.shapes registered; the registries
  as they were afterwards."""
  package = tmp_path / "toy_plugins"
  package.mkdir()
  (package / "__init__.py").write_text("")
  (package / "method.py").write_text(textwrap.dedent(METHOD_MODULE))
  (package / "shapes.py").write_text(textwrap.dedent(DATASET_MODULE))
  monkeypatch.syspath_prepend(str(tmp_path))
  for registry in (methods.METHODS, datasets.DATASETS):
    monkeypatch.setattr(registry, "_modules", list(registry._modules))
    monkeypatch.setattr(registry, "_loaded", None)
  methods.METHODS.register("toy_plugins.method")
  datasets.DATASETS.register("toy_plugins.shapes")
  yield
  for key in [k for k in sys.modules if k.startswith("toy_plugins")]:
    del sys.modules[key]


def _toy_config(workdir, scale=1.0):
  config = load_config("train", "method=toy,model=random:tiny,steps=3")
  config.model.image_size = 16
  config.data.dir = str(workdir / "data")
  config.train_data.name = "toy_shapes"
  config.train_data.builder_kwargs = {}
  config.preprocess.update(train="resize({size})", eval="resize")
  config.train.batch_size = 4
  config.toy.scale = scale
  return config


def test_a_toy_method_and_dataset_train_and_evaluate(plugins, tmp_path):
  default = config_lib.default()
  assert default.toy.to_dict() == {"scale": 1.0}
  config = _toy_config(tmp_path)
  assert config.train.optim.lr == 0.02  # its study learning rate
  validate.validate(config)
  train_dir = tmp_path / "train"
  result = main.run(config, str(train_dir))
  assert result["step"] == 3 and np.isfinite(result["loss"])
  evaluation = load_config("evaluate", f"train_dir={train_dir}")
  evaluation.evaluate.batch_size = 6
  summary = main.run(evaluation, str(tmp_path / "eval"))
  assert summary["n"] == 6
  meta = json.loads((tmp_path / "eval" / "meta.json").read_text())
  assert meta["method"] == "toy" and meta["builder"] == "toy_shapes"
  assert meta["dataset"] == "toy_shapes"  # its table key (the default)


def test_a_toy_methods_options_enter_the_fingerprint(plugins, tmp_path):
  one = resolve.train_fingerprint(_toy_config(tmp_path, scale=1.0))
  two = resolve.train_fingerprint(_toy_config(tmp_path, scale=2.0))
  assert one["options"]["toy"] == {"scale": 1.0}
  assert two["options"]["toy"] == {"scale": 2.0} and one != two
  lp = _toy_config(tmp_path)
  lp.method = "lp"
  assert "toy" not in resolve.train_fingerprint(lp)["options"]
