"""The random heatmap: seeded, deterministic per image, model-free, a control."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import explain
from rationality_jax import metrics
from rationality_jax.explain import seeding
from rationality_jax.explain import targets
from rationality_jax.explain.heatmaps import random as random_heatmap
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig

CONFIG = ViTConfig(
  image_size=16, patch_size=4, width=16, depth=2, num_heads=2, mlp_dim=32
)


def _setup(batch=6, seed=0):
  module = VisionTransformer(CONFIG)
  rng = np.random.default_rng(seed)
  images = jnp.asarray(rng.standard_normal((batch, 16, 16, 3)), jnp.float32)
  params = module.init(jax.random.key(seed), images)["params"]
  head = {
    "kernel": jnp.asarray(rng.standard_normal((16, 3)), jnp.float32),
    "bias": jnp.zeros(3),
  }
  labels = jnp.asarray(rng.integers(0, 3, batch))
  return module, params, head, images, labels


def _explain(heatmap, **options):
  module, params, head, images, labels = _setup()
  explainer = explain.make_explainer(
    module, targets.tower_linear_probe, heatmap, **options
  )
  return explainer, params, head, images, labels


def test_same_image_same_map_whatever_the_batch():
  explainer, params, head, images, labels = _explain(explain.Random(cell=4))
  first = explainer(params, head, images, labels)["heatmap"]
  again = explainer(params, head, images, labels)["heatmap"]
  np.testing.assert_array_equal(first, again)
  order = jnp.array([4, 0, 5])
  part = explainer(params, head, images[order], labels[order])["heatmap"]
  np.testing.assert_array_equal(part, first[order])
  # no two images share a map
  flat = np.asarray(first).reshape(6, -1)
  assert len({row.tobytes() for row in flat}) == 6
  other = explain.make_explainer(
    VisionTransformer(CONFIG), targets.tower_linear_probe, explain.Random(1, 4)
  )(params, head, images, labels)["heatmap"]
  assert not np.allclose(other, first)


def test_one_bit_of_one_pixel_gives_another_map():
  _, _, _, images, _ = _setup()
  bits = jax.lax.bitcast_convert_type(images, jnp.uint32)
  flipped = jax.lax.bitcast_convert_type(
    bits.at[2, 7, 3, 1].set(bits[2, 7, 3, 1] ^ 1), jnp.float32
  )
  base = np.asarray(random_heatmap.noise_maps(images, 0, 1))
  moved = np.asarray(random_heatmap.noise_maps(flipped, 0, 1))
  np.testing.assert_array_equal(np.delete(moved, 2, 0), np.delete(base, 2, 0))
  assert np.abs(moved[2] - base[2]).max() > 0.5
  same = images.at[1].set(images[3])
  np.testing.assert_array_equal(
    random_heatmap.noise_maps(same, 0, 1)[1], base[3]
  )


def test_noise_is_uniform_per_cell_and_upsampled():
  _, _, _, images, _ = _setup()
  hashes = seeding.image_hashes(images)
  keys = [jax.random.fold_in(jax.random.key(3), h) for h in hashes]
  per_pixel = np.asarray(random_heatmap.noise_maps(images, 3, 1))
  for key, got in zip(keys, per_pixel):
    np.testing.assert_array_equal(got, jax.random.uniform(key, (16, 16)))
  coarse = np.asarray(random_heatmap.noise_maps(images, 3, 5))  # 4 x 4 grid
  grids = np.stack([jax.random.uniform(k, (4, 4)) for k in keys])
  np.testing.assert_allclose(
    coarse,
    explain.upsample(jnp.asarray(grids), (16, 16)),
    atol=1e-6,
  )
  assert coarse.min() >= 0 and coarse.max() < 1


def test_model_free_map_and_the_models_logits():
  explainer, params, head, images, labels = _explain(explain.Random(cell=4))
  out = explainer(params, head, images, labels)
  other_params = VisionTransformer(CONFIG).init(jax.random.key(9), images)[
    "params"
  ]
  other = explainer(
    other_params, {**head, "bias": head["bias"] + 1}, images, labels[::-1]
  )
  np.testing.assert_array_equal(out["heatmap"], other["heatmap"])
  logits = VisionTransformer(CONFIG).apply(
    {"params": params}, images, head, method=targets.tower_linear_probe
  )
  np.testing.assert_allclose(out["logits"], logits, rtol=1e-6, atol=1e-6)
  np.testing.assert_array_equal(out["classes"], labels)
  heatmap = np.asarray(out["heatmap"])
  np.testing.assert_allclose(heatmap.min((1, 2)), 0.0)
  np.testing.assert_allclose(heatmap.max((1, 2)), 1.0)
  # one cell over the whole 16-pixel image: a constant map, zeros
  single = _explain(explain.Random(cell=16))[0](params, head, images, labels)
  np.testing.assert_array_equal(single["heatmap"], 0.0)
  predicted = explain.make_explainer(
    VisionTransformer(CONFIG),
    targets.tower_linear_probe,
    "random",
    target="predicted",
  )(params, head, images)
  np.testing.assert_array_equal(
    predicted["classes"], np.argmax(np.asarray(logits), -1)
  )


def test_forward_only():
  """No backward pass: fewer dot products than input gradients' one
  forward + one backward."""

  def dots(heatmap):
    explainer, params, head, images, labels = _explain(heatmap)
    return (
      explainer.lower(params, head, images, labels)
      .compile()
      .as_text()
      .count(" dot(")
    )

  assert 0 < dots(explain.Random()) < dots(explain.InputGradients())


def test_rma_of_random_maps_is_the_masks_share():
  """Per-pixel noise: mean RMA about |M| / (H W), the uniform baseline."""
  module, params, head, _, _ = _setup()
  images = jnp.asarray(
    np.random.default_rng(1).standard_normal((64, 16, 16, 3)), jnp.float32
  )
  masks = jnp.zeros((64, 16, 16), jnp.uint8).at[:, 2:10, 4:12].set(1)
  out = explain.make_explainer(
    module, targets.tower_linear_probe, explain.Random(cell=1)
  )(params, head, images, jnp.zeros(64, jnp.int32), masks)
  uniform = metrics.uniform_map_rma(masks)
  np.testing.assert_allclose(uniform, 0.25)
  rma = np.asarray(out["rma"])
  # 64 values, each the on-mask share of 256 uniform values: sd about 0.02
  assert abs(rma.mean() - 0.25) < 0.01
  assert rma.min() > 0.15 and rma.max() < 0.35


def test_nan_image_gives_a_nan_map_others_untouched():
  explainer, params, head, images, labels = _explain(explain.Random())
  clean = explainer(params, head, images, labels)
  broken = explainer(params, head, images.at[1, 3, 3, 0].set(jnp.nan), labels)
  assert np.isnan(np.asarray(broken["heatmap"][1])).all()
  keep = np.array([0, 2, 3, 4, 5])
  np.testing.assert_array_equal(
    np.asarray(broken["heatmap"])[keep], np.asarray(clean["heatmap"])[keep]
  )


def test_options():
  assert explain.HEATMAPS["random"](seed=3) == explain.Random(3, 16)
  assert not explain.Random.signed
  with pytest.raises(ValueError, match="cell >= 1"):
    explain.Random(cell=0)
