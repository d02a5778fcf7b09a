"""The records' confidence column: computed in the evaluation step, read back
beside records written before it existed."""

import os

import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import metrics
from rationality_jax.report import records
from rationality_jax.run import stream


def test_eval_step_records_the_softmax_probability_of_the_prediction():
  logits = jnp.asarray([[0.0, 2.0, 1.0], [jnp.nan, 0.0, 0.0]])

  def explain_fn(params, head, images, labels, masks):
    del params, head, labels, masks
    return {"logits": logits, "heatmap": images[..., 0]}

  images = jnp.ones((2, 4, 4, 3))
  masks = jnp.ones((2, 4, 4), jnp.uint8)
  out = stream.make_eval_step(explain_fn)(
    None, None, images, jnp.asarray([1, 0]), masks
  )
  expected = np.exp(2.0) / np.exp([0.0, 2.0, 1.0]).sum()
  assert float(out["confidence"][0]) == pytest.approx(expected, rel=1e-6)
  assert np.isnan(float(out["confidence"][1]))  # non-finite logits
  assert out["prediction"].tolist() == [1, -1]


def test_records_without_confidence_load_beside_records_with_it(tmp_path):
  folder = tmp_path / "records" / "p0-of-1"
  os.makedirs(folder)
  common = {"mask_area": [9, 9], "label": [0, 1], "prediction": [0, 0]}
  metrics.Accumulator().add(
    correct=[1, 0], rma=[0.6, 0.2], ids=["a", "b"], index=[0, 1], **common
  ).save(folder / "chunk_000000.npz")
  metrics.Accumulator().add(
    correct=[1, 0],
    rma=[0.7, 0.1],
    ids=["c", "d"],
    index=[2, 3],
    confidence=[0.9, 0.4],
    **common,
  ).save(folder / "chunk_000001.npz")
  with pytest.raises(records.IncompleteRunError, match=r"no run\.json"):
    records.load(str(tmp_path))  # made by hand: nothing says it is complete
  with records.unverified(str(tmp_path)):
    arrays = records.load(str(tmp_path)).arrays()
    summary = records.summarise(str(tmp_path))
  assert arrays["ids"].tolist() == ["a", "b", "c", "d"]
  np.testing.assert_allclose(arrays["confidence"], [np.nan, np.nan, 0.9, 0.4])
  # The mean runs over the samples that have one.
  assert summary["mean_confidence"] == pytest.approx(0.65)
