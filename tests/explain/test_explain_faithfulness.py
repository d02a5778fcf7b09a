"""Deletion and insertion curves: a classifier that reads only the object
(curves known in closed form), the pieces against numpy / scipy, a tiny ViT."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from rationality_jax import explain
from rationality_jax.explain import faithfulness
from rationality_jax.explain import targets
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig

SIZE = 16
CONFIG = ViTConfig(
  image_size=SIZE, patch_size=4, width=16, depth=2, num_heads=2, mlp_dim=32
)
GAIN = 6.0


def _object_classifier(module, images, head):
  """Logits [0, GAIN * mean of channel 0 over the object]: reads only the
  object's pixels (head['mask'] [H, W])."""
  del module
  mask = head["mask"]
  inside = jnp.einsum("bhw,hw->b", images[..., 0], mask) / mask.sum()
  return jnp.stack([jnp.zeros_like(inside), GAIN * inside], axis=1)


def _object_case(batch=3):
  mask = np.zeros((SIZE, SIZE), np.float32)
  mask[3:9, 5:12] = 1.0  # 42 of 256 pixels
  images = jnp.ones((batch, SIZE, SIZE, 3))
  return mask, images, jnp.ones(batch, jnp.int32)


def _curve(mode, **options):
  return faithfulness.make_perturbation_curve(
    VisionTransformer(CONFIG), _object_classifier, mode=mode, **options
  )


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


@pytest.mark.parametrize("steps", [4, 16, 7])
def test_oracle_map_curves_in_closed_form(steps):
  """With the object's pixels first, step k has removed (inserted)
  min(n_k, |M|) of them: score sigmoid(GAIN * share of the object left)."""
  mask, images, classes = _object_case()
  oracle = jnp.broadcast_to(jnp.asarray(mask), (3, SIZE, SIZE))
  area = int(mask.sum())
  n = np.arange(steps + 1) * SIZE * SIZE // steps
  taken = np.minimum(n, area) / area
  expected = {
    "deletion": _sigmoid(GAIN * (1 - taken)),
    "insertion": _sigmoid(GAIN * taken),
  }
  for mode in faithfulness.MODES:
    out = _curve(mode, steps=steps, baseline=0.0)(
      {}, {"mask": jnp.asarray(mask)}, images, oracle, classes
    )
    np.testing.assert_allclose(
      out["scores"], np.tile(expected[mode], (3, 1)), rtol=1e-5
    )
    e = expected[mode]
    auc = (e.sum() - (e[0] + e[-1]) / 2) / steps
    np.testing.assert_allclose(out["auc"], auc, rtol=1e-5)


def test_oracle_beats_random_and_inverted_maps():
  mask, images, classes = _object_case(batch=8)
  head = {"mask": jnp.asarray(mask)}
  rng = np.random.default_rng(0)
  maps = {
    "oracle": np.broadcast_to(mask, (8, SIZE, SIZE)),
    "random": rng.random((8, SIZE, SIZE)),
    "inverted": np.broadcast_to(1 - mask, (8, SIZE, SIZE)),
  }
  auc = {}
  for mode in faithfulness.MODES:
    curve = _curve(mode, steps=16, baseline=0.0)
    for name, m in maps.items():
      auc[mode, name] = np.asarray(
        curve({}, head, images, jnp.asarray(m, jnp.float32), classes)["auc"]
      )
  assert (auc["deletion", "oracle"] < auc["deletion", "random"]).all()
  assert (auc["deletion", "random"] < auc["deletion", "inverted"]).all()
  assert (auc["insertion", "oracle"] > auc["insertion", "random"]).all()
  assert (auc["insertion", "random"] > auc["insertion", "inverted"]).all()


def test_pixel_ranks_order_by_value_and_break_ties_by_the_seed():
  heatmaps = jnp.asarray(
    [[[0.5, 0.9], [0.1, 0.5]], [[0.0, 0.0], [0.0, -0.0]]], jnp.float32
  )
  ranks = np.asarray(faithfulness.pixel_ranks(heatmaps, seed=3))
  assert ranks[0, 1] == 0 and ranks[0, 2] == 3
  assert sorted(ranks[0, [0, 3]]) == [1, 2]
  for row in ranks:
    assert sorted(row) == [0, 1, 2, 3]
  # ties follow the seed's permutation, the same for every image
  perm = np.asarray(jax.random.permutation(jax.random.key(3), 4))
  np.testing.assert_array_equal(ranks[1], np.argsort(np.argsort(perm)))
  np.testing.assert_array_equal(
    faithfulness.pixel_ranks(heatmaps, seed=3), ranks
  )
  big = jnp.asarray(np.random.default_rng(1).random((2, 9, 7)), jnp.float32)
  np.testing.assert_array_equal(
    faithfulness.pixel_ranks(big),
    np.argsort(np.argsort(-np.asarray(big).reshape(2, -1), axis=1), axis=1),
  )


def test_auc_steps_and_blur_against_references():
  scores = jnp.asarray([[1.0, 0.5, 0.0], [0.2, 0.2, 0.2]])
  np.testing.assert_allclose(faithfulness.curve_auc(scores), [0.5, 0.2])
  np.testing.assert_array_equal(faithfulness.step_sizes(3, 10), [0, 3, 6, 10])
  with pytest.raises(ValueError, match="steps >= 1"):
    faithfulness.step_sizes(0, 10)
  # RISE: gkern(11, 5) = gaussian_filter(delta, 5); conv2d(padding=5)
  delta = np.zeros((11, 11))
  delta[5, 5] = 1
  kernel = scipy.ndimage.gaussian_filter(delta, 5)
  np.testing.assert_allclose(
    np.outer(faithfulness.rise_taps(), faithfulness.rise_taps()), kernel
  )
  images = np.random.default_rng(2).standard_normal((2, 13, 17, 3))
  expected = np.stack(
    [
      np.stack(
        [
          scipy.ndimage.convolve(images[b, ..., c], kernel, mode="constant")
          for c in range(3)
        ],
        axis=-1,
      )
      for b in range(2)
    ]
  )
  got = faithfulness.blur(jnp.asarray(images, jnp.float32))
  np.testing.assert_allclose(got, expected, atol=1e-5)


def _tower_case(batch=4):
  module = VisionTransformer(CONFIG)
  rng = np.random.default_rng(3)
  images = jnp.asarray(rng.standard_normal((batch, SIZE, SIZE, 3)), jnp.float32)
  params = module.init(jax.random.key(0), images)["params"]
  head = {
    "kernel": jnp.asarray(rng.standard_normal((16, 5)), jnp.float32),
    "bias": jnp.zeros(5),
  }
  return module, params, head, images


def test_tiny_vit_endpoints_batch_independence_and_nan():
  module, params, head, images = _tower_case()
  explainer = explain.make_explainer(
    module, targets.tower_linear_probe, explain.Chefer(0)
  )
  out = explainer(params, head, images, jnp.array([0, 1, 2, 3]))
  classes, heatmaps = out["classes"], out["heatmap"]

  def probability(x):
    logits = module.apply(
      {"params": params}, x, head, method=targets.tower_linear_probe
    )
    return np.asarray(targets.class_probability(logits, classes))

  for mode, baseline in (("deletion", 0.0), ("insertion", "blur")):
    curve = faithfulness.make_perturbation_curve(
      module, targets.tower_linear_probe, mode=mode, steps=5
    )
    result = curve(params, head, images, heatmaps, classes)
    assert result["scores"].shape == (4, 6)
    canvas = (
      faithfulness.blur(images)
      if baseline == "blur"
      else jnp.zeros_like(images)
    )
    first, last = (images, canvas) if mode == "deletion" else (canvas, images)
    np.testing.assert_allclose(result["scores"][:, 0], probability(first), 1e-5)
    np.testing.assert_allclose(result["scores"][:, -1], probability(last), 1e-5)
    for i in range(4):
      alone = curve(
        params, head, images[i : i + 1], heatmaps[i : i + 1], classes[i : i + 1]
      )
      np.testing.assert_allclose(alone["scores"][0], result["scores"][i], 1e-5)
    broken = curve(
      params, head, images, heatmaps.at[2, 1, 1].set(jnp.nan), classes
    )
    assert np.isnan(np.asarray(broken["scores"][2])).all()
    assert np.isnan(float(broken["auc"][2]))
    keep = np.array([0, 1, 3])
    np.testing.assert_array_equal(
      np.asarray(broken["auc"])[keep], np.asarray(result["auc"])[keep]
    )


def test_logit_score_and_under_an_outer_jit():
  module, params, head, images = _tower_case()
  heatmaps = jnp.asarray(
    np.random.default_rng(4).random((4, SIZE, SIZE)), jnp.float32
  )
  classes = jnp.array([4, 3, 2, 1])
  curve = faithfulness.make_perturbation_curve(
    module,
    targets.tower_linear_probe,
    steps=3,
    score=targets.class_logit,
    jit=False,
  )
  inner = curve(params, head, images, heatmaps, classes)
  outer = jax.jit(curve)(params, head, images, heatmaps, classes)
  np.testing.assert_allclose(inner["auc"], outer["auc"], rtol=1e-5)
  logits = module.apply(
    {"params": params}, images, head, method=targets.tower_linear_probe
  )
  np.testing.assert_allclose(
    outer["scores"][:, 0], targets.class_logit(logits, classes), rtol=1e-5
  )


def test_options_are_checked():
  module = VisionTransformer(CONFIG)
  with pytest.raises(ValueError, match="mode 'erase'"):
    faithfulness.make_perturbation_curve(
      module, _object_classifier, mode="erase"
    )
  with pytest.raises(ValueError, match="'gray'"):
    faithfulness.make_perturbation_curve(
      module, _object_classifier, baseline="gray"
    )
  with pytest.raises(ValueError, match="steps >= 1"):
    faithfulness.make_perturbation_curve(module, _object_classifier, steps=0)
