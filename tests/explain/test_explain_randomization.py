"""Cascading model-parameter randomisation (Adebayo et al. 2018)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import explain
from rationality_jax import metrics
from rationality_jax import models
from rationality_jax.explain import randomization
from rationality_jax.explain import targets
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig

CONFIG = ViTConfig(
  image_size=16, patch_size=4, width=16, depth=3, num_heads=2, mlp_dim=32
)


def _kernel(block):
  return np.asarray(block["attn"]["qkv"]["kernel"])


def _tower():
  module = VisionTransformer(CONFIG)
  params = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
  return module, params


def test_cascading_steps_from_the_top_block_down():
  module, params = _tower()
  before = jax.tree.map(np.array, params)
  steps = explain.cascading_randomization(module, params, jax.random.key(1))
  assert [lowest for lowest, _ in steps] == [2, 1, 0]
  fresh = VisionTransformer(CONFIG).init(
    jax.random.key(1), jnp.zeros((1, 16, 16, 3))
  )["params"]
  for lowest, tree in steps:
    for i in range(3):
      name = f"block_{i}"
      if i >= lowest:  # re-initialised: the fresh tower's block, exactly
        jax.tree.map(np.testing.assert_array_equal, tree[name], fresh[name])
        assert not np.allclose(_kernel(tree[name]), _kernel(params[name]))
      else:  # untouched: the very same arrays
        for new, old in zip(
          jax.tree.leaves(tree[name]), jax.tree.leaves(params[name])
        ):
          assert new is old
    for name in ("patch_embed", "cls_token", "pos_embedding", "final_norm"):
      assert tree[name] is params[name]
  # the input is not modified
  jax.tree.map(np.testing.assert_array_equal, params, before)


def test_independent_variant_and_keys():
  module, params = _tower()
  steps = randomization.cascading_randomization(
    module, params, jax.random.key(1), cascading=False
  )
  for lowest, tree in steps:
    for i in range(3):
      changed = not np.allclose(
        _kernel(tree[f"block_{i}"]), _kernel(params[f"block_{i}"])
      )
      assert changed == (i == lowest)
  again = randomization.cascading_randomization(
    module, params, jax.random.key(1)
  )
  other = randomization.cascading_randomization(
    module, params, jax.random.key(2)
  )
  np.testing.assert_array_equal(
    _kernel(again[-1][1]["block_0"]), _kernel(steps[-1][1]["block_0"])
  )
  assert not np.allclose(
    _kernel(other[-1][1]["block_0"]), _kernel(again[-1][1]["block_0"])
  )


def test_vision_language_model_keeps_dtypes_and_the_text_tower():
  module, params = models.load("random:tiny")
  module, params = models.vlm.with_precision(
    module, params, "float32", "bfloat16"
  )
  steps = randomization.cascading_randomization(
    module, params, jax.random.key(3)
  )
  depth = module.config.vision.depth
  assert [lowest for lowest, _ in steps] == list(range(depth - 1, -1, -1))
  _, last = steps[-1]
  assert last["text"] is params["text"]
  assert last["vision_proj"] is params["vision_proj"]
  for new, old in zip(
    jax.tree.leaves(last["vision"]), jax.tree.leaves(params["vision"])
  ):
    assert new.dtype == old.dtype and new.shape == old.shape
  assert not np.allclose(
    np.asarray(last["vision"]["block_0"]["mlp"]["fc1"]["kernel"], np.float32),
    np.asarray(params["vision"]["block_0"]["mlp"]["fc1"]["kernel"], np.float32),
  )


def test_maps_of_a_randomised_tower_move_away():
  """The sanity check end to end: Spearman and SSIM of each step's Chefer
  maps against the trained model's; 1 at step 0, lower once blocks are
  re-initialised."""
  module, params = _tower()
  rng = np.random.default_rng(0)
  images = jnp.asarray(rng.standard_normal((4, 16, 16, 3)), jnp.float32)
  head = {
    "kernel": jnp.asarray(rng.standard_normal((16, 3)), jnp.float32),
    "bias": jnp.zeros(3),
  }
  labels = jnp.array([0, 1, 2, 0])
  explainer = explain.make_explainer(
    module, targets.tower_linear_probe, explain.Chefer(0)
  )
  trained = explainer(params, head, images, labels)["heatmap"]
  np.testing.assert_allclose(metrics.spearman(trained, trained), 1.0)
  np.testing.assert_allclose(metrics.ssim(trained, trained), 1.0, rtol=1e-5)
  steps = randomization.cascading_randomization(
    module, params, jax.random.key(5)
  )
  for _, tree in steps:
    maps = explainer(tree, head, images, labels)["heatmap"]
    assert float(metrics.spearman(trained, maps).mean()) < 0.95
    assert float(metrics.ssim(trained, maps).mean()) < 0.95


def test_parameters_that_do_not_fit_the_module_are_refused():
  module, _ = _tower()
  wider = VisionTransformer(
    ViTConfig(
      image_size=16, patch_size=4, width=24, depth=3, num_heads=2, mlp_dim=32
    )
  )
  params = wider.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))["params"]
  with pytest.raises(ValueError, match="block_0 does not match"):
    randomization.cascading_randomization(module, params, jax.random.key(0))
  with pytest.raises(KeyError, match="vision"):
    randomization.cascading_randomization(
      module, params, jax.random.key(0), vision_path=("vision",)
    )
