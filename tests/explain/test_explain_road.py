"""ROAD's noisy linear imputation (`explain.imputation`) against a scipy.sparse
solve of the reference's system (`reference_road`); its noise; the ROAD curves on the object
classifier of test_explain_faithfulness; the driver's option."""

import re

import hypothesis
import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax.explain import faithfulness
from rationality_jax.explain import imputation
from rationality_jax.explain import seeding
from rationality_jax.run import config as config_lib
from rationality_jax.run import resolve
from rationality_jax.run import validate
from tests.explain import reference_road
from tests.explain.test_explain_faithfulness import SIZE
from tests.explain.test_explain_faithfulness import _curve


def _masks(size: int, rng) -> np.ndarray:
  scattered = rng.random((size, size)) < 0.3
  block = np.zeros((size, size), bool)
  block[size // 4 : 3 * size // 4, size // 5 : 4 * size // 5] = True
  border = np.zeros((size, size), bool)
  border[: size // 2, size // 3 :] = True  # touches the top and right edges
  half = np.zeros((size, size), bool)
  half[:, : size // 2] = True
  return np.stack([scattered, block, border, half])


@jax.jit
def _fill(images, removed, noise):
  """ROAD's fill with seed 3 (one compile per shape, whatever the noise)."""
  return imputation.impute(images, removed, seed=3, noise=noise)


def test_fill_matches_scipy_spsolve_at_224():
  """Scattered pixels, a large block, a block on the border, half the image:
  within 2e-5 of spsolve (noise 0; 4e-6 measured); the kept pixels bit for
  bit."""
  rng = np.random.default_rng(0)
  removed = _masks(224, rng)
  images = rng.standard_normal((4, 224, 224, 3)).astype(np.float32)
  noiseless = np.asarray(_fill(images, removed, 0.0))
  noisy = np.asarray(_fill(images, removed, 0.01))
  for k in range(4):
    expected = reference_road.spsolve_fill(
      images[k].astype(np.float64), removed[k]
    )
    np.testing.assert_allclose(noiseless[k], expected, atol=2e-5, rtol=0)
    for got in (noiseless[k], noisy[k]):
      np.testing.assert_array_equal(got[~removed[k]], images[k][~removed[k]])


@hypothesis.settings(deadline=None, max_examples=20)
@hypothesis.given(
  cells=hnp.arrays(bool, (12, 12)),
  seed=hypothesis.strategies.integers(0, 2**16),
)
def test_each_filled_pixel_is_its_neighbours_weighted_mean(cells, seed):
  """Noise 0: a removed pixel's value is the weighted mean of its in-image
  neighbours (the system), within the kept values' range; a region with no
  kept neighbour (here: all removed) is 0; none removed, the image. Masks
  of 4 x 4-pixel cells."""
  removed = np.broadcast_to(np.kron(cells, np.ones((4, 4), bool)), (4, 48, 48))
  images = np.random.default_rng(seed).standard_normal((4, 48, 48, 3))
  images = images.astype(np.float32)
  filled = np.asarray(_fill(images, removed, 0.0))
  if removed.all() or not removed.any():
    np.testing.assert_array_equal(filled, 0.0 if removed.all() else images)
    return
  residual = np.asarray(imputation.laplacian(filled.transpose(0, 3, 1, 2)))
  holes = removed[..., None] & np.ones(3, bool)
  assert np.abs(residual.transpose(0, 2, 3, 1)[holes]).max() < 1e-4
  for k in range(4):
    kept = images[k][~removed[k]]
    assert (filled[k][removed[k]] >= kept.min(0) - 1e-4).all()
    assert (filled[k][removed[k]] <= kept.max(0) + 1e-4).all()


def test_all_removed_is_zero_plus_noise_and_nothing_removed_is_the_image():
  images = jnp.asarray(
    np.random.default_rng(1).standard_normal((4, 48, 48, 3)), jnp.float32
  )
  every = jnp.ones((4, 48, 48), bool)  # same shape as below: one compile
  np.testing.assert_array_equal(_fill(images, every, 0.0), 0.0)
  np.testing.assert_allclose(
    _fill(images, every, 0.1), 0.1 * imputation.normals(images, 3), rtol=1e-6
  )
  np.testing.assert_array_equal(_fill(images, ~every, 0.1), images)


def test_noise_is_per_image_and_on_the_removed_pixels_only():
  rng = np.random.default_rng(2)
  images = jnp.asarray(rng.standard_normal((4, 48, 48, 3)), jnp.float32)
  removed = jnp.asarray(rng.random((4, 48, 48)) < 0.5)
  clean = np.asarray(_fill(images, removed, 0.0))
  noisy = np.asarray(_fill(images, removed, 0.01))
  delta = noisy - clean
  inside = np.asarray(removed)
  assert abs(delta[inside].std() / 0.01 - 1) < 0.03
  assert abs(delta[inside].mean()) < 1e-3
  np.testing.assert_array_equal(delta[~inside], 0.0)
  both = inside[0] & inside[1]
  assert not np.allclose(delta[0][both], delta[1][both], atol=1e-3)
  # each image's noise comes from its own bits and the seed: another
  # order in the batch, the same fill
  order = np.array([2, 0, 3, 1])
  again = _fill(images[order], removed[order], 0.01)
  np.testing.assert_allclose(again, noisy[order], atol=1e-6)
  keys = seeding.image_keys(images, 3)
  np.testing.assert_array_equal(
    imputation.normals(images, 3)[1],
    jax.random.normal(keys[1], (48, 48, 3)),
  )


def _object_images(batch: int) -> tuple:
  """Channel 0 is +1 on the object (`_object_case`'s mask) and -1 off it:
  the object classifier's evidence is all on the object."""
  mask = np.zeros((SIZE, SIZE), np.float32)
  mask[3:9, 5:12] = 1.0
  images = np.zeros((batch, SIZE, SIZE, 3), np.float32)
  images[..., 0] = 2 * mask - 1
  return mask, jnp.asarray(images), jnp.ones(batch, jnp.int32)


def test_road_curves_rank_the_oracle_first():
  """Deletion area: oracle < random < inverted; insertion the reverse (ROAD
  fills from the kept pixels, so removing the object only hurts once the
  object's own pixels are gone)."""
  mask, images, classes = _object_images(batch=4)
  head = {"mask": jnp.asarray(mask)}
  rng = np.random.default_rng(0)
  maps = {
    "oracle": np.broadcast_to(mask, (4, SIZE, SIZE)),
    "random": rng.random((4, SIZE, SIZE)),
    "inverted": np.broadcast_to(1 - mask, (4, SIZE, SIZE)),
  }
  names = list(maps)
  batch = jnp.concatenate([images] * len(names))  # one call per curve
  heatmaps = jnp.asarray(np.concatenate([maps[n] for n in names]), jnp.float32)
  curves = [
    _curve(mode, steps=8, baseline="road", jit=False)
    for mode in faithfulness.MODES
  ]
  both = jax.jit(lambda *args: [curve(*args) for curve in curves])
  outs = both({}, head, batch, heatmaps, jnp.concatenate([classes] * 3))
  auc = {}
  for mode, out in zip(faithfulness.MODES, outs):
    for i, name in enumerate(names):
      auc[mode, name] = np.asarray(out["auc"][4 * i : 4 * i + 4])
  # nothing removed yet at deletion's first step: the image itself
  np.testing.assert_allclose(outs[0]["scores"][:, 0], 1 / (1 + np.exp(-6.0)))
  assert (auc["deletion", "oracle"] < auc["deletion", "random"]).all()
  assert (auc["deletion", "random"] < auc["deletion", "inverted"]).all()
  assert (auc["insertion", "oracle"] > auc["insertion", "random"]).all()
  assert (auc["insertion", "random"] > auc["insertion", "inverted"]).all()


def test_driver_option_validated_and_fingerprinted():
  assert faithfulness.fill_baseline("rise", "deletion") == 0.0
  assert faithfulness.fill_baseline("rise", "insertion") == "blur"
  assert faithfulness.fill_baseline("road", "insertion") == "road"
  config = config_lib.default()
  config.model.path = "random:tiny"
  assert config.evaluate.faithfulness_fill == "rise"
  config.evaluate.faithfulness_fill = "roads"
  with pytest.raises(
    config_lib.ConfigError, match=re.escape("config.evaluate.faithfulness_fill")
  ):
    validate.validate_run(config)
  config.evaluate.faithfulness_fill = "road"
  validate.validate_run(config)
  # off without curves; with them, only when it is not RISE's (older
  # workdirs keep their fingerprints)
  assert "faithfulness" not in resolve.eval_fingerprint(config, {})
  config.evaluate.faithfulness = "deletion+insertion"
  road = resolve.eval_fingerprint(config, {})["faithfulness"]
  assert road["evaluate.faithfulness_fill"] == "road"
  config.evaluate.faithfulness_fill = "rise"
  rise = resolve.eval_fingerprint(config, {})["faithfulness"]
  assert rise == {"curves": "deletion+insertion", "steps": 16}
