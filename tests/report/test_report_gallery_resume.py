"""The thumbnails of a killed evaluation: after the resume, the same as an
uninterrupted run's (the evaluation loop with a random tiny CLIP)."""

import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import data
from rationality_jax import explain
from rationality_jax import models
from rationality_jax.report import gallery
from rationality_jax.run import checkpoints
from rationality_jax.run import stream

PP = "normalize('clip')|keep('image', 'mask', 'label', 'id')"
N = 40


class Killed(Exception):
  """Stands for SIGKILL after a batch."""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  data_dir = tmp_path_factory.mktemp("data")
  options = dict(image_size=32, train_size=8, test_size=N)
  data.build("synthetic_rationality", data_dir, **options)
  source = data.get_source("synthetic_rationality", "test", data_dir, **options)
  config = models.VLMConfig(
    family="clip",
    embed_dim=16,
    projection_bias=False,
    vision=models.ViTConfig(
      image_size=32, patch_size=8, width=32, depth=2, num_heads=2, mlp_dim=64
    ),
    text=models.CLIPTextConfig(
      vocab_size=64,
      context_length=8,
      width=16,
      depth=1,
      num_heads=2,
      mlp_dim=32,
    ),
  )
  module = models.VisionLanguageModel(config)
  params = module.init(
    jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.ones((1, 8), jnp.int32)
  )["params"]
  head = {"class_embeddings": jax.random.normal(jax.random.key(1), (4, 16))}
  explain_fn = explain.make_explainer(
    module, explain.targets.zero_shot, explain.Chefer(start_layer=0), jit=False
  )
  trained = checkpoints.Trained(
    module=module,
    params=params,
    head=head,
    method="zs",
    classifier=None,
    step=0,
    meta={},
  )
  return explain_fn, trained, source


def _evaluate(setup, out_dir, monkeypatch=None, kill_after=None):
  explain_fn, trained, source = setup
  if kill_after is not None:

    def after_batch(batches):
      if batches >= kill_after:
        raise Killed(batches)

    monkeypatch.setattr(stream, "_after_batch", after_batch)
  try:
    stream.evaluate_records(
      explain_fn,
      trained,
      source,
      str(out_dir),
      spec=PP,
      batch_size=8,
      name="zs",
      gallery=gallery.Plan(2, N, 0.5, PP),
    )
  finally:
    if kill_after is not None:
      monkeypatch.undo()


def _thumbnails(out_dir):
  chunks = list(gallery.chunks(str(out_dir)))
  keys = ("ids", "index", "cell", "image", "mask", "heatmap")
  return {k: np.concatenate([c[k] for c in chunks]) for k in keys}


def test_a_killed_evaluation_keeps_the_same_thumbnails(
  setup, tmp_path, monkeypatch
):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  _evaluate(setup, whole)
  with pytest.raises(Killed):
    _evaluate(setup, killed, monkeypatch, kill_after=3)
  # A chunk written after the last marker: the resume drops it.
  shard = os.path.join(killed, "records", "p0-of-1")
  assert glob.glob(os.path.join(shard, "gallery_*.npz"))
  _evaluate(setup, killed)
  expected, got = _thumbnails(whole), _thumbnails(killed)
  assert len(expected["ids"]) >= 2  # the spread, and some per cell
  for key in expected:
    np.testing.assert_array_equal(got[key], expected[key])
  # The display colours are the images' own (the normalization undone).
  chunk = next(gallery.chunks(str(whole)))
  source = setup[2]
  pixels = source[int(chunk["index"][0])]["image"]
  assert source[int(chunk["index"][0])]["id"] == chunk["ids"][0]
  own = gallery._resize(np.asarray(pixels, np.uint8), gallery.SIZE)
  diff = np.abs(own.astype(int) - chunk["image"][0].astype(int))
  assert diff.max() <= 1
