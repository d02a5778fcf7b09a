"""Streaming accumulator: merge, save/load, re-summarise at any threshold."""

import numpy as np
import pytest

from rationality_jax import metrics


def _batches(seed=0, n_batches=4, batch=8):
  rng = np.random.default_rng(seed)
  for _ in range(n_batches):
    rma = rng.random(batch).astype(np.float32)
    rma[rng.random(batch) < 0.1] = np.nan
    yield {
      "correct": rng.random(batch) < 0.6,
      "rma": rma,
      "rra": rng.random(batch).astype(np.float32),
      "mask_area": np.where(np.isnan(rma), 0, 10),
      "ids": [f"img{rng.integers(1 << 30)}" for _ in range(batch)],
    }


def _filled(**kw):
  acc = metrics.Accumulator()
  for b in _batches(**kw):
    acc.add(**b)
  return acc


def test_summary_matches_direct_counts():
  acc = _filled()
  arrays = acc.arrays()
  assert len(acc) == 32 and arrays["ids"].shape == (32,)
  for threshold in (0.2, 0.5, 0.8):
    counts = metrics.rationality_counts(
      arrays["correct"], metrics.valid_evidence(arrays["rma"], threshold)
    )
    summary = acc.summary(threshold)
    assert {k: summary[k] for k in counts.as_dict()} == counts.as_dict()
    np.testing.assert_equal(
      summary["pt"], float(metrics.prediction_trustworthiness(counts))
    )
    np.testing.assert_equal(
      summary["ir"], float(metrics.inference_reliability(counts))
    )
  defined = ~np.isnan(arrays["rma"])
  assert acc.summary()["mean_rma"] == pytest.approx(
    arrays["rma"][defined].mean()
  )
  # Means are over the samples in the four cells: the empty-mask samples'
  # (random) RRA is left out, as their RMA is.
  assert acc.summary()["mean_rra"] == pytest.approx(
    arrays["rra"][defined].mean()
  )
  assert acc.summary()["undefined_empty_mask"] == int((~defined).sum())
  assert acc.summary()["undefined_nonfinite_rma"] == 0


def test_curve_equals_summaries():
  acc = _filled()
  thresholds = [0.1, 0.5, 0.9]
  curve = acc.curve(thresholds)
  for i, t in enumerate(thresholds):
    s = acc.summary(t)
    np.testing.assert_equal(curve["pt"][i], np.float32(s["pt"]))
    np.testing.assert_equal(curve["ir"][i], np.float32(s["ir"]))
    assert curve["rr"][i] == s["rr"]


def test_merge_and_round_trip(tmp_path):
  whole = _filled()
  parts = [metrics.Accumulator().add(**b) for b in _batches()]
  merged = metrics.Accumulator.merge(parts)
  assert merged.summary(0.4) == whole.summary(0.4)
  path = tmp_path / "records.npz"
  whole.save(path)
  loaded = metrics.Accumulator.load(path)
  assert loaded.summary(0.6) == whole.summary(0.6)
  np.testing.assert_array_equal(loaded.arrays()["ids"], whole.arrays()["ids"])
  rebuilt = metrics.Accumulator.from_arrays(whole.arrays())
  assert rebuilt.summary(0.3) == whole.summary(0.3)


def test_where_drops_padding():
  acc = metrics.Accumulator().add(
    correct=[1, 0, 1], rma=[0.9, 0.9, 0.1], where=[1, 1, 0]
  )
  assert len(acc) == 2 and acc.summary()["wr"] == 1 and acc.summary()["rw"] == 0


def test_empty_accumulator():
  summary = metrics.Accumulator().summary()
  assert summary["n"] == 0 and np.isnan(summary["pt"])


def test_errors_name_the_problem(tmp_path):
  acc = metrics.Accumulator().add(correct=[1, 0], rma=[0.5, 0.5])
  with pytest.raises(ValueError, match="columns"):
    acc.add(correct=[1], rma=[0.1], rra=[0.2])
  with pytest.raises(ValueError, match="'rma' has 1 samples, 'correct' has 2"):
    metrics.Accumulator().add(correct=[1, 0], rma=[0.5])
  with pytest.raises(KeyError, match="rma"):
    metrics.Accumulator.from_arrays({"correct": np.ones(2, bool)})
  bad = tmp_path / "truncated.npz"
  bad.write_bytes(b"PK\x03\x04 not really a zip")
  with pytest.raises(ValueError, match=r"truncated\.npz"):
    metrics.Accumulator.load(bad)
  assert len(acc) == 2  # a failed add keeps what was there
