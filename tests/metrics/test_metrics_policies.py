"""Degenerate cases under both policies: ours ("undefined") and the release's.

The release (deep-real/vlm-pred-rationality) scores a sample with
`es = np.sum(pred * anno) / np.sum(pred)` and `0 if es < cls_thres else 1`
(prediction_rationality/utils/xml_analysis.py, `eval_rma`), and counts the four
cells from those 0/1 values (prediction_rationality/PT_IR_analysis.py).
`_release_validity` below restates that arithmetic in plain numpy.
"""

import hypothesis
import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import metrics

NAN = float("nan")
INF = float("inf")
POLICY_PAIRS = [(e, f) for e in metrics.POLICIES for f in metrics.POLICIES]
RELEASE = {"empty_mask": "release", "nonfinite": "release"}

H = np.array([[1.0, 2.0, 0.0], [3.0, 4.0, 0.0]], np.float32)  # mass 10
M = np.array([[1, 0, 0], [0, 1, 1]], np.uint8)  # mass on the mask 5
EMPTY = np.zeros_like(M)
ZERO = np.zeros_like(H)


def _with(value, at):
  h = H.copy()
  h[at] = value
  return h


def _release_validity(heatmap, mask, threshold):
  with np.errstate(invalid="ignore", divide="ignore"):
    es = np.sum(heatmap * mask) / np.sum(heatmap)
  return 0 if es < threshold else 1


# ------------------------------------------------------------------ rma ----

# (heatmap, mask, negative) -> RMA under (empty_mask, nonfinite) =
# (undefined, undefined), (undefined, release), (release, undefined),
# (release, release).
RMA_CASES = {
  "plain": (H, M, "clip", (0.5, 0.5, 0.5, 0.5)),
  "empty mask": (H, EMPTY, "clip", (NAN, NAN, 0.0, 0.0)),
  "empty mask, zero map": (ZERO, EMPTY, "clip", (NAN, NAN, 0.0, NAN)),
  "zero map": (ZERO, M, "clip", (0.0, NAN, 0.0, NAN)),
  "NaN off the mask": (_with(NAN, (0, 2)), M, "clip", (NAN,) * 4),
  "+inf off the mask": (_with(INF, (0, 1)), M, "clip", (NAN, 0.0, NAN, 0.0)),
  "+inf on the mask": (_with(INF, (0, 0)), M, "clip", (NAN,) * 4),
  "-inf, clipped": (_with(-INF, (0, 1)), M, "clip", (NAN,) * 4),
  # mass 1 on the mask, -1 off it: sum(H) = 0 with mass on the object.
  "zero sum, keep": (
    np.array([[1.0, -1.0]], np.float32),
    np.array([[1, 0]], np.uint8),
    "keep",
    (0.0, INF, 0.0, INF),
  ),
}


@pytest.mark.parametrize("case", sorted(RMA_CASES))
def test_rma_degenerate_cases_under_both_policies(case):
  heatmap, mask, negative, expected = RMA_CASES[case]
  got = [
    float(
      metrics.rma(heatmap, mask, negative=negative, empty_mask=e, nonfinite=f)
    )
    for e, f in POLICY_PAIRS
  ]
  np.testing.assert_array_equal(got, expected, err_msg=case)


def test_release_policies_match_the_release_arithmetic():
  for case in ("plain", "empty mask", "empty mask, zero map", "zero map"):
    heatmap, mask, _, _ = RMA_CASES[case]
    for threshold in (0.0, 0.5, 1.0):
      ours = metrics.valid_evidence(
        metrics.rma(heatmap, mask, **RELEASE), threshold, nonfinite="release"
      )
      assert float(ours) == _release_validity(heatmap, mask, threshold), case


def test_valid_evidence_policies():
  rma = np.array([NAN, 0.2, 0.5, 0.7, INF, -INF], np.float32)
  np.testing.assert_array_equal(
    metrics.valid_evidence(rma), [NAN, 0, 1, 1, NAN, NAN]
  )
  np.testing.assert_array_equal(
    metrics.valid_evidence(rma, nonfinite="release"), [1, 0, 1, 1, 1, 0]
  )


@hypothesis.settings(max_examples=60, deadline=None)
@hypothesis.given(
  hnp.arrays(
    np.float32,
    st.integers(0, 20),
    elements=st.floats(width=32, allow_subnormal=False),
  ),
  # No subnormals: XLA on CPU flushes them to zero, numpy does not.
  st.floats(0, 1, width=32, allow_subnormal=False),
)
def test_valid_evidence_release_is_the_release_comparison(rma, threshold):
  release = [0 if es < threshold else 1 for es in rma]
  np.testing.assert_array_equal(
    metrics.valid_evidence(rma, threshold, nonfinite="release"), release
  )
  ours = np.where(np.isfinite(rma), release, np.nan)
  np.testing.assert_array_equal(metrics.valid_evidence(rma, threshold), ours)


def test_policies_under_jit_vmap_and_grad():
  hs = np.stack([H, ZERO, H, _with(NAN, (1, 1))])
  ms = np.stack([M, M, EMPTY, M])
  for e, f in POLICY_PAIRS:
    eager = metrics.rma(hs, ms, empty_mask=e, nonfinite=f)
    jitted = jax.jit(
      lambda h, m, e=e, f=f: metrics.rma(h, m, empty_mask=e, nonfinite=f)
    )(hs, ms)
    mapped = jax.vmap(
      lambda h, m, e=e, f=f: metrics.rma(h, m, empty_mask=e, nonfinite=f)
    )(hs, ms)
    np.testing.assert_array_equal(eager, jitted)
    np.testing.assert_array_equal(eager, mapped)
  for f in metrics.POLICIES:
    grad = jax.grad(lambda h, f=f: metrics.rma(h, M, nonfinite=f))(H)
    np.testing.assert_allclose(grad, (M - 0.5) / 10, rtol=1e-6)
    zero_grad = jax.grad(
      lambda h, f=f: jnp.nan_to_num(metrics.rma(h, M, nonfinite=f))
    )(ZERO)
    assert np.all(np.isfinite(zero_grad)), f


def test_unknown_policy_is_refused():
  with pytest.raises(ValueError, match="empty_mask='zero'"):
    metrics.rma(H, M, empty_mask="zero")
  with pytest.raises(ValueError, match="nonfinite='ignore'"):
    metrics.valid_evidence(np.float32(0.5), nonfinite="ignore")
  with pytest.raises(ValueError, match="nonfinite='valid'"):
    metrics.Accumulator().add(correct=[True], rma=[0.5]).summary(
      nonfinite="valid"
    )


def test_evidence_columns():
  hs = np.stack([H, ZERO, _with(-INF, (0, 1)), _with(NAN, (0, 2)), H])
  ms = np.stack([M, M, M, M, EMPTY])
  columns = jax.jit(metrics.evidence_columns)(hs, ms)
  np.testing.assert_array_equal(columns["rma"], [0.5, 0.0, NAN, NAN, NAN])
  np.testing.assert_array_equal(columns["mask_area"], [3, 3, 3, 3, 0])
  np.testing.assert_array_equal(
    columns["heatmap_finite"], [True, True, False, False, True]
  )
  np.testing.assert_array_equal(
    np.asarray(columns["heatmap_mass"])[[0, 1, 4]], [10.0, 0.0, 10.0]
  )
  np.testing.assert_array_equal(columns["rma"], metrics.rma(hs, ms))


# ---------------------------------------------------------- accumulator ----

CELL = np.array([[1, 0], [0, 0]], np.uint8)
# One sample per degenerate case (see test_accumulator_hand_computed).
SAMPLES = [
  # heatmap, mask, correct, logits finite
  ([[9.0, 1.0], [0.0, 0.0]], CELL, True, True),  # RMA 0.9
  ([[2.0, 3.0], [0.0, 0.0]], 0 * CELL, True, True),  # empty mask
  ([[0.0, 0.0], [0.0, 0.0]], 0 * CELL, False, True),  # empty mask, zero map
  ([[0.0, 0.0], [0.0, 0.0]], CELL, True, True),  # zero map
  ([[NAN, 1.0], [0.0, 0.0]], CELL, False, True),  # NaN heatmap
  ([[8.0, 2.0], [0.0, 0.0]], CELL, True, False),  # NaN logits, RMA 0.8
  ([[2.0, 8.0], [0.0, 0.0]], CELL, False, True),  # RMA 0.2
]


def _records(samples=SAMPLES) -> metrics.Accumulator:
  heatmaps = np.asarray([s[0] for s in samples], np.float32)
  masks = np.stack([s[1] for s in samples])
  return metrics.Accumulator().add(
    correct=np.array([s[2] for s in samples]),
    logits_finite=np.array([s[3] for s in samples]),
    **metrics.evidence_columns(heatmaps, masks),
  )


# (empty_mask, nonfinite) -> rr, rw, wr, ww, right/wrong/prediction undefined
HAND_COUNTS = {
  ("undefined", "undefined"): (1, 1, 0, 1, 1, 2, 1),
  ("undefined", "release"): (3, 0, 1, 1, 1, 1, 0),
  ("release", "undefined"): (1, 2, 0, 2, 0, 1, 1),
  ("release", "release"): (3, 1, 2, 1, 0, 0, 0),
}


@pytest.mark.parametrize("policies", POLICY_PAIRS)
def test_accumulator_hand_computed(policies):
  empty_mask, nonfinite = policies
  summary = _records().summary(0.5, empty_mask=empty_mask, nonfinite=nonfinite)
  names = (
    "rr",
    "rw",
    "wr",
    "ww",
    "right_undefined",
    "wrong_undefined",
    "prediction_undefined",
  )
  assert tuple(summary[k] for k in names) == HAND_COUNTS[policies]
  assert summary["n"] == 7
  assert summary["policy_empty_mask"] == empty_mask
  reasons = [summary[f"undefined_{r}"] for r in metrics.REASONS]
  assert sum(reasons) == summary["undefined"]
  if policies == ("undefined", "undefined"):
    assert reasons == [1, 1, 2, 0]  # logits, heatmap, empty mask, other
    assert summary["accuracy"] == pytest.approx(3 / 6)  # s5 has no prediction
    assert summary["pt"] == pytest.approx(1 / 2)
    assert summary["ir"] == pytest.approx(1 / 1)
    assert summary["mean_rma"] == pytest.approx((0.9 + 0.0 + 0.2) / 3)
  if policies == ("release", "release"):
    assert reasons == [0, 0, 0, 0]
    assert summary["accuracy"] == pytest.approx(4 / 7)
    assert summary["pt"] == pytest.approx(3 / 4)
    assert summary["ir"] == pytest.approx(3 / 5)
    # The release's RMA: 0.9, 0, NaN, NaN, NaN, 0.8, 0.2; means skip NaN.
    assert summary["mean_rma"] == pytest.approx((0.9 + 0.0 + 0.8 + 0.2) / 4)


def test_release_summary_matches_the_release_counting():
  records = _records()
  threshold = 0.5
  validity = [
    _release_validity(np.asarray(h), m, threshold) for h, m, *_ in SAMPLES
  ]
  correct = [s[2] for s in SAMPLES]
  cells = {"rr": (1, 1), "rw": (1, 0), "wr": (0, 1), "ww": (0, 0)}
  summary = records.summary(threshold, **RELEASE)
  for name, cell in cells.items():
    assert summary[name] == sum(
      (int(c), v) == cell for c, v in zip(correct, validity)
    ), name


def test_curve_carries_reasons_and_equals_summaries():
  records = _records()
  for policies in POLICY_PAIRS:
    kw = dict(zip(("empty_mask", "nonfinite"), policies))
    curve = records.curve([0.1, 0.5, 0.95], **kw)
    for i, t in enumerate([0.1, 0.5, 0.95]):
      summary = records.summary(t, **kw)
      for key, value in curve.items():
        if key == "threshold":
          continue
        np.testing.assert_equal(
          np.float32(value[i]), np.float32(summary[key]), err_msg=key
        )


def test_old_records_without_flags_still_load(tmp_path):
  full = _records().arrays()
  old = {k: full[k] for k in ("correct", "rma", "mask_area")}
  acc = metrics.Accumulator.from_arrays(old)
  ours = acc.summary()
  # Missing flags read as finite: the NaN heatmap's and the NaN logits'
  # samples cannot be recognised; the NaN RMA is reported apart.
  assert ours["undefined_nonfinite_rma"] == 1  # the NaN heatmap
  assert ours["undefined_nonfinite_logits"] == 0
  assert ours["undefined_empty_mask"] == 2
  release = acc.summary(**RELEASE)
  assert release["undefined"] == 0
  assert release["rw"] == 2  # the empty mask and the zero map (no mass known)
  without_area = metrics.Accumulator.from_arrays(
    {k: full[k] for k in ("correct", "rma")}
  )
  assert without_area.summary()["undefined_nonfinite_rma"] == 3
  with pytest.raises(ValueError, match="mask_area"):
    without_area.summary(**RELEASE)
  path = tmp_path / "old.npz"
  np.savez(path, **old)
  assert metrics.Accumulator.load(path).summary() == ours


def test_merge_fills_missing_flags():
  # A run resumed across the update: chunks with and without the flags.
  new = _records()
  old = metrics.Accumulator.from_arrays(
    {k: new.arrays()[k] for k in ("correct", "rma", "mask_area")}
  )
  merged = metrics.Accumulator.merge([new, old])
  arrays = merged.arrays()
  assert len(merged) == 14
  np.testing.assert_array_equal(arrays["logits_finite"][7:], True)
  np.testing.assert_array_equal(arrays["heatmap_finite"][7:], True)
  assert np.isnan(arrays["heatmap_mass"][7:]).all()
  summary = merged.summary()
  assert summary["undefined_nonfinite_logits"] == 1  # only the new chunk's
  assert summary["undefined_empty_mask"] == 4
  with pytest.raises(ValueError, match="columns"):
    metrics.Accumulator.merge(
      [new, metrics.Accumulator().add(correct=[True], rma=[0.5])]
    )


# ------------------------------------------------------------ properties ----

settings = hypothesis.settings(max_examples=40, deadline=None)


@st.composite
def batches(draw, n=10):
  heatmaps = draw(
    hnp.arrays(
      np.float32,
      (n, 3, 3),
      elements=st.floats(0, 10, width=32, allow_subnormal=False),
    )
  )
  masks = draw(hnp.arrays(np.uint8, (n, 3, 3), elements=st.integers(0, 1)))
  kind = draw(hnp.arrays(np.int8, (n,), elements=st.integers(0, 4)))
  heatmaps[kind == 1] = 0.0  # zero map
  heatmaps[kind == 2, 0, 0] = np.nan  # NaN heatmap
  masks[kind == 3] = 0  # empty mask
  correct = draw(hnp.arrays(bool, (n,)))
  logits_finite = draw(hnp.arrays(bool, (n,)))
  return heatmaps, masks, correct, logits_finite


@settings
@hypothesis.given(batches(), st.sampled_from([0.0, 0.3, 0.5, 1.0]))
def test_records_reproduce_every_policy(batch, threshold):
  heatmaps, masks, correct, logits_finite = batch
  # float32 sums may fall either side of the threshold for a value within
  # rounding of it, as numpy's may: the release comparison skips those.
  release_rma = np.asarray(metrics.rma(heatmaps, masks, **RELEASE))
  hypothesis.assume(not (np.abs(release_rma - threshold) < 1e-5).any())
  acc = metrics.Accumulator().add(
    correct=correct,
    logits_finite=logits_finite,
    **metrics.evidence_columns(heatmaps, masks),
  )
  empty = masks.reshape(len(masks), -1).sum(-1) == 0
  for empty_mask, nonfinite in POLICY_PAIRS:
    rma = metrics.rma(
      heatmaps, masks, empty_mask=empty_mask, nonfinite=nonfinite
    )
    valid = np.array(
      metrics.valid_evidence(rma, threshold, nonfinite=nonfinite)
    )
    if empty_mask == "undefined":
      valid[empty] = np.nan  # valid_evidence sees the NaN, not its cause
    predicted = logits_finite if nonfinite == "undefined" else None
    direct = metrics.rationality_counts(
      correct, valid, prediction_defined=predicted
    )
    summary = acc.summary(threshold, empty_mask=empty_mask, nonfinite=nonfinite)
    assert {k: summary[k] for k in direct.as_dict()} == direct.as_dict()
    assert summary["n"] == len(correct)
    assert summary["undefined"] == sum(
      summary[f"undefined_{r}"] for r in metrics.REASONS
    )
    if (empty_mask, nonfinite) == ("release", "release"):
      assert summary["undefined"] == 0
      release = [
        _release_validity(h, m, threshold) for h, m in zip(heatmaps, masks)
      ]
      for cell, (c, v) in {"rr": (1, 1), "rw": (1, 0), "wr": (0, 1)}.items():
        assert summary[cell] == sum(
          (int(ci), vi) == (c, v) for ci, vi in zip(correct, release)
        )
    if (empty_mask, nonfinite) == ("undefined", "undefined"):
      assert summary["undefined_nonfinite_logits"] == int(
        np.sum(~logits_finite)
      )
      assert summary["prediction_undefined"] == int(np.sum(~logits_finite))
