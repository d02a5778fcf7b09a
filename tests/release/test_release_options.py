"""Each run-config option that reproduces a release choice: default ours, its
per-sample effect under both settings, its fingerprint, its refusal."""

import inspect
import re

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rationality_jax import data
from rationality_jax import explain
from rationality_jax import methods
from rationality_jax import metrics
from rationality_jax import models
from rationality_jax.run import config as config_lib
from rationality_jax.run import resolve
from rationality_jax.run import step as step_lib
from rationality_jax.run import train
from rationality_jax.run import validate

# option -> (its default, the release's value, a release file its docstring names)
OPTIONS = {
  "model.accelerator_dtype": ("", "float16", "chefer_clip/clip.py"),
  "preprocess.mask_order": ("ours", "release", "clip_zs_flcp_cub.py"),
  "head.class_names": ("study", "release", "label_dict.json"),
  "train.release_frozen_head": (False, True, "finetune_vlm/lp_ft.py"),
  "heatmap.constant_map": ("zero", "nan", "utils/xml_analysis.py"),
  "evaluate.max_batches": (0, 5, "clip_zs_flcp_in.py"),
}


def _get(config, key):
  for part in key.split("."):
    config = config[part]
  return config


def _run_config(**overrides) -> ml_collections.ConfigDict:
  config = config_lib.default()
  config.model.path = "random:tiny"
  for key, value in overrides.items():
    config_lib.set_path(config, key, value)
  return config


def test_defaults_are_ours_and_each_docstring_names_the_release_file():
  config = config_lib.default()
  doc = inspect.getdoc(config_lib)
  for key, (ours, _, release_file) in OPTIONS.items():
    assert _get(config, key) == ours, key
    assert key.split(".")[1] in doc and release_file in doc, key


@pytest.mark.parametrize(
  "key, value",
  [
    ("model.accelerator_dtype", "fp16"),
    ("preprocess.mask_order", "releases"),
    ("head.class_names", "ours"),
    ("heatmap.constant_map", "none"),
    ("evaluate.max_batches", -1),
  ],
)
def test_a_bad_value_is_refused_naming_the_key(key, value):
  config = _run_config()
  config_lib.set_path(config, key, value)
  with pytest.raises(config_lib.ConfigError, match=re.escape(f"config.{key}")):
    validate.validate_run(config)
  config_lib.set_path(config, key, _get(config_lib.default(), key))
  validate.validate_run(config)


def test_release_mask_order_only_with_the_study_eval_preset():
  config = _run_config(**{"preprocess.mask_order": "release"})
  validate.validate_run(config)
  config.preprocess.eval = "resize"
  with pytest.raises(config_lib.ConfigError, match=r"preprocess\.mask_order"):
    validate.validate_run(config)


# -------------------------------------------------------------- fingerprints --


def test_fingerprints_hold_the_methods_own_options_only():
  """A training run's fingerprint holds the class prompts' options and the
  section its method declares, nothing of another method's (adding a method
  never makes existing runs stale); evaluation fingerprints made before the
  release options existed are unchanged by their defaults."""
  for method, section in (("lp", "lp"), ("ft", "lp"), ("zs", None)):
    config = _run_config(method=method)
    trained = resolve.train_fingerprint(config)
    expected = {"head"} | ({section} if section else set())
    assert set(trained["options"]) == expected, method
    assert set(trained["options"]["head"]) == {"templates", "class_names"}
  assert set(trained["train"]) == {
    "batch_size",
    "num_epochs",
    "total_steps",
    "optim",
    "release_frozen_head",
  }
  evaluated = resolve.eval_fingerprint(config, {"stage": "zero_shot"})
  assert set(evaluated) == {"stage", "trained", "data", "preprocess", "heatmap"}
  assert set(evaluated["preprocess"]) == {"eval", "normalization"}
  assert "constant_map" not in evaluated["heatmap"]


@pytest.mark.parametrize(
  "key, value, stage",
  [
    ("train.release_frozen_head", True, "train"),
    ("head.class_names", "release", "train"),
    ("preprocess.mask_order", "release", "evaluate"),
    ("heatmap.constant_map", "nan", "evaluate"),
    ("evaluate.max_batches", 5, "evaluate"),
  ],
)
def test_each_option_enters_its_stages_fingerprint(key, value, stage):
  base, changed = _run_config(), _run_config(**{key: value})

  def fingerprints(config):
    trained = resolve.train_fingerprint(config)
    return trained, resolve.eval_fingerprint(config, trained)

  (train_a, eval_a), (train_b, eval_b) = (
    fingerprints(base),
    fingerprints(changed),
  )
  assert eval_a != eval_b  # every one of them changes the records
  assert (train_a != train_b) == (stage == "train")


def test_max_batches_fingerprint_records_the_batch_size():
  a = _run_config(**{"evaluate.max_batches": 5, "evaluate.batch_size": 64})
  b = _run_config(**{"evaluate.max_batches": 5, "evaluate.batch_size": 32})
  fa = resolve.eval_fingerprint(a, {})
  assert fa["subset"] == {"max_batches": 5, "batch_size": 64}
  assert fa != resolve.eval_fingerprint(b, {})


# ------------------------------------------------------- accelerator dtype --


def test_accelerator_dtype_is_a_no_op_on_cpu_and_float16_on_a_gpu(monkeypatch):
  config = _run_config(**{"model.accelerator_dtype": "float16"})
  plain = _run_config()
  assert jax.default_backend() == "cpu"
  assert resolve.compute_dtype(config) == "float32"
  assert resolve.model_identity(config) == resolve.model_identity(plain)
  assert resolve.eval_fingerprint(config, {}) == resolve.eval_fingerprint(
    plain, {}
  )
  module, params = models.load("random:tiny")
  cpu_module, _ = resolve.precision(config, module, params)
  assert cpu_module.dtype == jnp.float32
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  assert resolve.compute_dtype(config) == "float16"
  assert resolve.compute_dtype(plain) == "float32"
  gpu_module, gpu_params = resolve.precision(config, module, params)
  assert gpu_module.dtype == jnp.float16
  assert jax.tree.leaves(gpu_params)[0].dtype == jnp.float32  # param_dtype
  assert resolve.model_identity(config)["dtype"] == "float16"
  assert resolve.eval_fingerprint(config, {})["precision"] == {
    "dtype": "float16",
    "param_dtype": "float32",
  }


# --------------------------------------------------------------- mask order --


def test_mask_order_reaches_the_eval_spec_only():
  def spec(config, train):
    return resolve.preprocess_spec(
      config, "cub_200_2011", 224, "clip", train=train, keep=("image",)
    )

  ours, release = (
    _run_config(),
    _run_config(**{"preprocess.mask_order": "release"}),
  )
  assert "mask_from_soft(255)" in spec(release, False)
  assert "mask_from_soft" not in spec(ours, False)
  assert spec(ours, False).startswith("drop('soft_mask')")
  assert spec(ours, True) == spec(release, True)


# ------------------------------------------------------------ constant map --


@pytest.fixture(scope="module")
def tiny():
  module, params = models.load("random:tiny")
  size = module.config.vision.image_size
  images = jax.random.normal(jax.random.PRNGKey(0), (3, size, size, 3))
  masks = np.zeros((3, size, size), np.uint8)
  masks[:, 4:20, 4:20] = 1
  masks[2] = 0  # an empty mask too
  return module, params, images, masks


def test_constant_map_nan_counts_valid_under_the_release_only(tiny):
  """A head that ignores the image (zero class embeddings) gives zero
  gradients: a constant relevance map. Ours normalizes it to zeros (RMA 0,
  invalid); the release's 0/0 is NaN, and its NaN < 0.5 is False: valid."""
  module, params, images, masks = tiny
  head = {"class_embeddings": jnp.zeros((4, module.config.embed_dim))}
  labels = jnp.array([0, 1, 2])
  out = {}
  for rule in ("zero", "nan"):
    explain_fn = explain.make_explainer(
      module,
      explain.targets.zero_shot,
      explain.Chefer(start_layer=-1),
      constant_map=rule,
    )
    heatmap = explain_fn(params, head, images, labels)["heatmap"]
    acc = metrics.Accumulator().add(
      correct=np.array([True, False, True]),
      **metrics.evidence_columns(heatmap, jnp.asarray(masks)),
    )
    out[rule] = (np.asarray(heatmap), acc)
  assert (out["zero"][0] == 0).all() and np.isnan(out["nan"][0]).all()
  ours = out["zero"][1].evidence(0.5)
  np.testing.assert_array_equal(ours["rma"][:2], [0.0, 0.0])
  np.testing.assert_array_equal(ours["valid"][:2], [0.0, 0.0])
  assert np.isnan(ours["valid"][2]) and ours["reason"][2] == 3  # empty mask
  release = out["nan"][1].evidence(
    0.5, empty_mask="release", nonfinite="release"
  )
  np.testing.assert_array_equal(release["valid"], [1.0, 1.0, 1.0])
  assert np.isnan(release["rma"]).all()
  # The same NaN map under our policies: undefined, by reason.
  undefined = out["nan"][1].evidence(0.5)
  assert np.isnan(undefined["valid"]).all()
  assert undefined["reason"].tolist() == [2, 2, 2]  # non-finite heatmap first
  counts = out["nan"][1].summary(0.5, empty_mask="release", nonfinite="release")
  assert (counts["rr"], counts["wr"], counts["undefined"]) == (2, 1, 0)


def test_heatmap_label_names_the_release_constant_map():
  assert resolve.heatmap_label(_run_config()) == "chefer(start_layer=0)"
  nan = _run_config(**{"heatmap.constant_map": "nan"})
  assert resolve.heatmap_label(nan) == "chefer(start_layer=0, constant_map=nan)"


# -------------------------------------------------------------- class names --


class _Source:
  class_names = ("n02085620-Chihuahua", "n02085782-Japanese_spaniel")

  def __len__(self):
    return 2


def test_class_name_rule_reaches_the_prompts(monkeypatch):
  monkeypatch.setattr(data, "build", lambda *a, **k: None)
  monkeypatch.setattr(data, "get_source", lambda *a, **k: _Source())
  names = {}
  for rule in ("study", "release"):
    config = _run_config(**{"head.class_names": rule})
    config.train_data.name = "stanford_dogs_masks"
    names[rule] = resolve.source(config, "/unused", "train")[1]
  assert names == {
    "study": ["chihuahua", "japanese_spaniel"],
    "release": ["chihuahua", "japanese spaniel"],
  }


# -------------------------------------------------------------- frozen head --


def test_frozen_head_labels():
  module, params = models.load("random:tiny")
  trainable = {"params": params, "head": {"kernel": 0, "bias": 0}}
  for method, trains_backbone in (("lp", False), ("ft", True)):
    for frozen in (False, True):
      config = _run_config(
        **{"method": method, "train.release_frozen_head": frozen}
      )
      labels = step_lib.trainable_labels(
        config, methods.METHODS[method], module.config, trainable
      )
      head = set(jax.tree.leaves(labels["head"]))
      backbone = set(jax.tree.leaves(labels["params"]))
      assert head == {"freeze" if frozen else "train"}
      assert ("train" in backbone) == trains_backbone


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("synthetic"))
  kwargs = dict(image_size=32, train_size=32, test_size=24)
  data.build("synthetic_rationality", directory, **kwargs)
  return directory, kwargs


def _tiny_training(method, data_dir, kwargs, frozen):
  config = _run_config(
    **{
      "mode": "train",
      "method": method,
      "train.release_frozen_head": frozen,
      "train.total_steps": 3,
      "train.batch_size": 16,
      "train.optim.lr": 1e-2,
      "train.eval_accuracy": False,
      "train.checkpoint.async_save": False,
      "train.input_threads": 1,
      "preprocess.train": "resize({size})",
      "preprocess.eval": "resize",
      "data.dir": data_dir,
    }
  )
  config.train_data.builder_kwargs.update(kwargs)
  return config


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lp", "ft"])
def test_frozen_head_keeps_its_initial_values(
  method, small_synthetic, tmp_path
):
  from rationality_jax.run import checkpoints

  data_dir, kwargs = small_synthetic
  states = {}
  for frozen in (False, True):
    workdir = str(tmp_path / f"{method}-{frozen}")
    train.train_and_evaluate(
      _tiny_training(method, data_dir, kwargs, frozen), workdir
    )
    states[frozen] = {
      step: checkpoints.read(workdir, step, items=("state",))["state"]
      for step in (0, 3)
    }
  for frozen, by_step in states.items():
    head_moved = any(
      not np.array_equal(a, b)
      for a, b in zip(
        jax.tree.leaves(by_step[0]["head"]), jax.tree.leaves(by_step[3]["head"])
      )
    )
    backbone_moved = any(
      not np.array_equal(a, b)
      for a, b in zip(
        jax.tree.leaves(by_step[0]["params"]),
        jax.tree.leaves(by_step[3]["params"]),
      )
    )
    assert head_moved == (not frozen)
    assert backbone_moved == (method == "ft")
  # Both start from the same random head (same seed).
  for a, b in zip(
    jax.tree.leaves(states[False][0]["head"]),
    jax.tree.leaves(states[True][0]["head"]),
  ):
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------- max batches --


def test_imagefolder_first_takes_the_first_by_label_then_file():
  labels = [2, 0, 1, 0, 1, 0]
  ids = ["c/x3", "a/x9", "b/x1", "a/x10", "b/x0", "a/x2"]
  # ImageFolder: class a (x10, x2, x9: string order), then b (x0, x1), c.
  positions = data.release.imagefolder_first(labels, ids, 4)
  assert [ids[p] for p in positions] == ["a/x10", "a/x2", "a/x9", "b/x0"]
  groups = ["s1", "s2", "s1", "s2", "s1", "s2"]
  positions = data.release.imagefolder_first(labels, ids, 2, groups)
  assert [ids[p] for p in positions] == ["b/x0", "b/x1", "a/x10", "a/x2"]
  with pytest.raises(ValueError, match="count"):
    data.release.imagefolder_first(labels, ids, 0)


def test_max_batches_evaluates_the_releases_first_examples(small_synthetic):
  data_dir, kwargs = small_synthetic
  config = _run_config(
    **{
      "evaluate.max_batches": 2,
      "evaluate.batch_size": 4,
      "data.dir": data_dir,
    }
  )
  config.train_data.builder_kwargs.update(kwargs)
  subset, _ = resolve.source(config, data_dir, "eval")
  full = data.get_source("synthetic_rationality", "test", data_dir, **kwargs)
  everything = sorted(
    (int(full[i]["label"]), full[i]["id"]) for i in range(len(full))
  )
  assert len(subset) == 8
  assert [subset[i]["id"] for i in range(8)] == [i for _, i in everything[:8]]
  columns = data.read_columns(
    "synthetic_rationality", "test", data_dir, **kwargs
  )
  assert columns["id"].tolist() == [full[i]["id"] for i in range(len(full))]
  assert columns["label"].tolist() == [
    int(full[i]["label"]) for i in range(len(full))
  ]
