"""Every method trains on the synthetic benchmark.

What should train changes, the rest stays bit-identical.
"""

import re

import jax
import numpy as np
import pytest

from rationality_jax import data
from rationality_jax import methods
from rationality_jax import models
from rationality_jax.methods import heads
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import optim
from rationality_jax.run import resolve
from rationality_jax.run import train
from rationality_jax.run import validate
from rationality_jax.run import wise_ft

TOWERS = r"params/(vision|text|vision_proj|text_proj)/.*"
# What each method must train on a CLIP model, written independently of the methods.
EXPECTED_TRAINABLE = {
  "zs": r"(?!)",
  "lp": r"head/(kernel|bias)",
  "ft": r"params/(vision|vision_proj)/.*|head/(kernel|bias)",
  "flcp": TOWERS,  # CLIP: temperature fixed at 0.07, logit_scale frozen
  "coop": r"head/context",
  "adapter": r"head/adapter/(down|up)",
  "guided": TOWERS,
  "guided_ft": r"params/(vision|vision_proj)/.*|head/(kernel|bias)",
  "rrr": TOWERS,
}

_RUNS = {}


@pytest.fixture
def trained(tmp_path_factory, data_dir, worker):
  """method -> (workdir, result, config) of a 6-step run (trained once per session)."""

  def run(method, **overrides):
    key = (method, tuple(sorted(overrides.items())))
    if key not in _RUNS:
      workdir = str(tmp_path_factory.mktemp(f"run_{method}"))
      config = worker.tiny_config(method, data_dir, **overrides)
      _RUNS[key] = (workdir, train.train_and_evaluate(config, workdir), config)
    return _RUNS[key]

  return run


@pytest.mark.parametrize("method", sorted(EXPECTED_TRAINABLE))
def test_train_method_trains_only_its_parameters(method, trained, worker):
  workdir, result, _ = trained(method)
  before, after = (
    worker.flat_params(workdir, step=0),
    worker.flat_params(workdir),
  )
  assert before.keys() == after.keys()
  expected = re.compile(EXPECTED_TRAINABLE[method])
  changed = {
    name for name in before if not np.array_equal(before[name], after[name])
  }
  should = {name for name in before if expected.fullmatch(name)}
  assert changed == should, (
    sorted(changed - should)[:5],
    sorted(should - changed)[:5],
  )
  for name in set(before) - should:  # bit-identical, not just close
    assert before[name].tobytes() == after[name].tobytes(), name
  losses = [loss for _, loss in result["losses"]]
  if method == "zs":  # nothing trains: the run stores the zero-shot head only
    assert losses == [] and result["step"] == 0
    return
  assert len(losses) == 6 and all(np.isfinite(losses))
  assert losses[-1] < losses[0] - 1e-3, losses


@pytest.mark.parametrize("method", ["flcp", "coop", "lp"])
def test_train_checkpoint_gives_the_classifier_and_its_head(
  method, trained, data_dir
):
  workdir, _, config = trained(method)
  model = checkpoints.load_trained(workdir)
  assert model.method == method and model.step == 6
  assert model.classifier is methods.METHODS[method].classifier
  source, class_names = resolve.source(config, workdir, "eval")
  images = np.stack(
    [(source[i]["image"] / 255.0).astype(np.float32) for i in range(4)]
  )
  logits = model.module.apply(
    {"params": model.params}, images, model.head, method=model.classifier
  )
  assert logits.shape == (4, len(class_names)) and np.isfinite(logits).all()
  if (
    method == "flcp"
  ):  # the zero-shot head rebuilt from the fine-tuned text tower
    task = heads.make_task(models.tokenizer("clip", 16), class_names)
    rebuilt = heads.zero_shot_embeddings(model.module, model.params, task)
    np.testing.assert_allclose(
      model.head["class_embeddings"], rebuilt, atol=1e-6
    )
    initial = checkpoints.read(workdir, 0)["eval_head"]["class_embeddings"]
    assert np.abs(initial - rebuilt).max() > 1e-4


def test_train_coop_initialised_from_a_phrase_is_the_zero_shot_head(
  data_dir, worker, tmp_path
):
  """Contexts = the embeddings of "a photo of a".

  CoOp's text path then equals ZS's on the same prompts.
  """
  config = worker.tiny_config("coop", data_dir, **{"coop.init": "a photo of a"})
  s = train.setup(config, str(tmp_path))
  assert s.head["context"].shape == (4, 32)  # 4 tokens, text width 32
  coop = methods.METHODS["coop"].eval_head(s.module, s.params, s.head, s.task)
  tokenizer = models.tokenizer("clip", 16)
  ids, mask = tokenizer([f"a photo of a {name}." for name in s.class_names])
  plain = heads.encode_texts(s.module, s.params, ids, mask)
  np.testing.assert_allclose(
    coop["class_embeddings"], plain, rtol=1e-5, atol=1e-6
  )


def test_wise_ft_stage_writes_one_finished_run_per_alpha(
  trained, worker, tmp_path
):
  workdir, _, _ = trained("ft")
  config = config_lib.default()
  config.mode = "wise_ft"
  config.wise_ft.finetuned_workdir = workdir
  config.wise_ft.alphas = (0.0, 0.5, 1.0)
  validate.validate(config)
  out = wise_ft.run(config, str(tmp_path))
  assert sorted(out) == [0.0, 0.5, 1.0]
  start = worker.flat_params(workdir, step=0)
  end = worker.flat_params(workdir)
  for alpha in (0.0, 0.5, 1.0):
    directory = tmp_path / f"alpha_{alpha:g}"
    assert out[alpha] == str(directory)
    for name in ("config.json", "fingerprint.json", train.RESULT):
      assert (directory / name).exists(), name
    model = checkpoints.load_trained(str(directory))
    assert model.classifier is methods.METHODS["ft"].classifier
    assert model.meta["alpha"] == alpha and model.method == "wise_ft"
    got = dict(optim.named_leaves({"params": model.params, "head": model.head}))
    for name, value in got.items():
      np.testing.assert_allclose(
        value,
        (1 - alpha) * start[name] + alpha * end[name],
        rtol=1e-6,
        atol=1e-7,
        err_msg=name,
      )


def test_train_guided_reads_the_masks_it_chose(trained, data_dir, worker):
  """k masks per class: the seeded choice is in the checkpoint meta, the
  training input keeps the masks, another seed chooses others."""
  overrides = {"guided.masks_per_class": 2}
  workdir, result, config = trained("guided", **overrides)
  assert all(np.isfinite([loss for _, loss in result["losses"]]))
  masks = checkpoints.read(workdir, items=("meta",))["meta"]["masks"]
  columns = data.read_columns(
    config.train_data.name,
    "train",
    data_dir,
    **config.train_data.builder_kwargs.to_dict(),
  )
  chosen = np.isin(columns["id"], masks["ids"])
  assert masks["masks_per_class"] == 2 and masks["seed"] == config.seed
  assert masks["count"] == chosen.sum() == 8  # 4 classes
  assert np.bincount(columns["label"][chosen]).tolist() == [2, 2, 2, 2]
  s = train.setup(config, workdir)
  assert "'mask'" in s.spec.split("keep(")[1]
  np.testing.assert_array_equal(s.task["mask_selected"], chosen)
  other = worker.tiny_config("guided", data_dir, seed=7, **overrides)
  assert (train.setup(other, workdir).task["mask_selected"] != chosen).any()


def test_train_trainable_labels_follow_the_regex():
  tree = {
    "params": {"vision": {"k": 1}, "text": {"k": 2}, "logit_scale": 3},
    "head": {"kernel": 4},
  }
  labels = optim.trainable_labels(tree, r"params/vision/.*|head/.*")
  assert labels == {
    "params": {
      "vision": {"k": "train"},
      "text": {"k": "freeze"},
      "logit_scale": "freeze",
    },
    "head": {"kernel": "train"},
  }
  assert jax.tree.leaves(optim.trainable_labels(tree, "")) == ["freeze"] * 4
