"""Signed maps (gradient x input, integrated gradients): which part is relevance.

The issue: min-max of a raw signed map sends a background of zero attribution
to about 0.5, so the background holds most of the mass and every sample is
invalid (PT 0) while the pointing game is perfect. Ours keeps the positive
part (`signed='positive'`); the release's min-max stays available.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import explain
from rationality_jax import metrics
from rationality_jax.explain import postprocess
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig

SIZE = 16
CONFIG = ViTConfig(
  image_size=SIZE,
  patch_size=4,
  width=8,
  depth=1,
  num_heads=1,
  mlp_dim=8,
  pre_norm=False,
  patch_bias=False,
)


def _object_and_background():
  """A gradient x input map: +1 on a 4x4 object, 0 on most of the background,
  -1 on a few background pixels (evidence against the class); and the mask."""
  attribution = np.zeros((SIZE, SIZE), np.float32)
  mask = np.zeros((SIZE, SIZE), np.uint8)
  attribution[2:6, 3:7] = 1.0
  mask[2:6, 3:7] = 1
  attribution[12, [1, 5, 9, 13]] = -1.0
  return attribution, mask


def test_signed_part_on_a_hand_built_map():
  attribution, mask = _object_and_background()
  maps = jnp.asarray(attribution[None])
  positive = np.asarray(
    postprocess.normalize(maps, signed_map=True, signed="positive")
  )[0]
  raw = np.asarray(
    postprocess.normalize(maps, signed_map=True, signed="minmax")
  )[0]
  # positive part: the object 1, everything else 0.
  np.testing.assert_array_equal(positive, mask.astype(np.float32))
  # min-max of the raw map: object 1, the negative pixels 0, the rest 0.5.
  expected = np.full((SIZE, SIZE), 0.5, np.float32)
  expected[mask == 1] = 1.0
  expected[12, [1, 5, 9, 13]] = 0.0
  np.testing.assert_array_equal(raw, expected)
  rma_positive = float(metrics.rma(positive, mask))
  rma_minmax = float(metrics.rma(raw, mask))
  assert rma_positive == 1.0
  # 16 object pixels at 1 against 236 background pixels at 0.5
  np.testing.assert_allclose(rma_minmax, 16 / (16 + 236 * 0.5), rtol=1e-6)
  assert float(metrics.valid_evidence(rma_positive)) == 1.0
  assert float(metrics.valid_evidence(rma_minmax)) == 0.0
  # the pointing game cannot tell the two apart
  assert float(metrics.pointing_game(positive, mask)) == 1.0
  assert float(metrics.pointing_game(raw, mask)) == 1.0


def test_mostly_negative_noisy_background():
  """Object +1, background attribution uniform in [-0.2, 0.05] (mostly
  against the class): min-max lifts the background to about 0.1 on 240
  pixels and the sample is invalid; the positive part keeps it near 0."""
  rng = np.random.default_rng(0)
  _, mask = _object_and_background()
  attribution = rng.uniform(-0.2, 0.05, (SIZE, SIZE)).astype(np.float32)
  attribution[mask == 1] = 1.0
  maps = jnp.asarray(attribution[None])
  rma = {}
  for signed in postprocess.SIGNED_MAPS:
    heatmap = postprocess.normalize(maps, signed_map=True, signed=signed)
    rma[signed] = float(metrics.rma(heatmap, mask[None])[0])
  positive = np.maximum(attribution, 0)
  positive = positive / positive.max()
  raw = (attribution - attribution.min()) / np.ptp(attribution)
  for signed, h in (("positive", positive), ("minmax", raw)):
    np.testing.assert_allclose(
      rma[signed], (h * mask).sum() / h.sum(), rtol=1e-5
    )
  assert rma["positive"] > 0.9 and rma["minmax"] < 0.45
  assert float(metrics.valid_evidence(rma["positive"])) == 1.0
  assert float(metrics.valid_evidence(rma["minmax"])) == 0.0


def test_unsigned_maps_are_normalized_alike_either_way():
  maps = jnp.asarray(
    np.random.default_rng(0).random((2, 5, 5), dtype=np.float32)
  )
  for signed in postprocess.SIGNED_MAPS:
    np.testing.assert_array_equal(
      postprocess.normalize(maps, signed_map=False, signed=signed),
      postprocess.minmax_normalize(maps),
    )
  # a non-negative signed map too: its positive part is itself
  np.testing.assert_array_equal(
    postprocess.normalize(maps, signed_map=True),
    postprocess.minmax_normalize(maps),
  )


def test_no_positive_attribution_is_a_constant_map():
  maps = -jnp.asarray(
    np.random.default_rng(1).random((1, 4, 4), dtype=np.float32)
  )
  np.testing.assert_array_equal(
    postprocess.normalize(maps, signed_map=True), 0.0
  )
  assert np.isnan(
    postprocess.normalize(maps, signed_map=True, constant_map="nan")
  ).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nonfinite_signed_map_stays_all_nan(bad):
  maps = np.ones((2, 3, 3), np.float32)
  maps[0, 1, 1] = bad
  for signed in postprocess.SIGNED_MAPS:
    out = np.asarray(
      postprocess.normalize(jnp.asarray(maps), signed_map=True, signed=signed)
    )
    assert np.isnan(out[0]).all()
    np.testing.assert_array_equal(out[1], 0.0)  # constant: zeros


def test_unknown_choice_is_refused():
  with pytest.raises(ValueError, match=r"signed='abs' is not one of"):
    postprocess.normalize(jnp.ones((1, 2, 2)), signed_map=False, signed="abs")
  module = VisionTransformer(CONFIG)
  with pytest.raises(ValueError, match=r"signed='abs'"):
    explain.make_explainer(module, _linear, "gradient_x_input", signed="abs")


def test_every_heatmap_declares_whether_it_is_signed():
  signed = {name for name, cls in explain.HEATMAPS.items() if cls.signed}
  assert signed == {"gradient_x_input", "integrated_gradients"}
  for cls in explain.HEATMAPS.values():
    assert "signed" not in {f.name for f in dataclasses.fields(cls)}


def _linear(module, images, head):
  """A classifier that reads the pixels linearly: logits = <images, w_k>."""
  del module
  return jnp.einsum(
    "bhwc,hwck->bk", images, head["w"], precision=jax.lax.Precision.HIGHEST
  )


def test_explainer_scores_a_signed_map_by_its_positive_part():
  """End to end: with images of ones, gradient x input of a linear score is
  its weight map, the hand-built one above."""
  attribution, mask = _object_and_background()
  w = np.zeros((SIZE, SIZE, 3, 2), np.float32)
  w[..., 1] = attribution[..., None] / 3.0  # summed over 3 channels
  module = VisionTransformer(CONFIG)
  params = module.init(jax.random.key(0), jnp.zeros((1, SIZE, SIZE, 3)))[
    "params"
  ]
  images = jnp.ones((2, SIZE, SIZE, 3))
  masks = jnp.asarray(np.stack([mask, mask]))
  labels = jnp.array([1, 1])
  head = {"w": jnp.asarray(w)}
  rma = {}
  for signed in postprocess.SIGNED_MAPS:
    for heatmap in (explain.GradientXInput(), explain.IntegratedGradients(4)):
      out = explain.make_explainer(module, _linear, heatmap, signed=signed)(
        params, head, images, labels, masks
      )
      rma[signed, heatmap.name] = np.asarray(out["rma"])
      # the raw patch map keeps its sign whatever the choice
      assert float(out["heatmap_patches"].min()) < 0
  for name in ("gradient_x_input", "integrated_gradients"):
    np.testing.assert_allclose(rma["positive", name], 1.0, rtol=1e-6)
    np.testing.assert_allclose(
      rma["minmax", name], 16 / (16 + 236 * 0.5), rtol=1e-5
    )
    counts = metrics.rationality_counts(
      jnp.array([True, True]), metrics.valid_evidence(rma["positive", name])
    )
    assert float(metrics.prediction_trustworthiness(counts)) == 1.0
    counts = metrics.rationality_counts(
      jnp.array([True, True]), metrics.valid_evidence(rma["minmax", name])
    )
    assert float(metrics.prediction_trustworthiness(counts)) == 0.0
