"""The thumbnails of a killed evaluation: after the resume, the same as an
uninterrupted run's (the evaluation loop with a random tiny CLIP)."""

import glob
import os

import numpy as np
import pytest

from rationality_jax import data
from rationality_jax.report import gallery
from rationality_jax.run import checkpoints
from rationality_jax.run import stream
from tests import tiny_model

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
  module, params, head, explain_fn = tiny_model.zero_shot_explainer()
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
