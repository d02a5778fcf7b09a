"""The ViT's contract with explanations, fused vs materialised attention,
position resizing, dtypes, config checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from rationality_jax import models


@pytest.mark.parametrize("old_grid,new_grid", [(24, 14), (4, 6), (7, 7)])
def test_resize_position_embedding_is_torch_bicubic(old_grid, new_grid):
  rng = np.random.RandomState(old_grid)
  pos = rng.randn(1 + old_grid * old_grid, 5).astype(np.float32)
  got = models.resize_position_embedding(pos, new_grid)
  grid = (
    torch.tensor(pos[1:], dtype=torch.float64)
    .reshape(1, old_grid, old_grid, 5)
    .permute(0, 3, 1, 2)
  )
  expected = torch.nn.functional.interpolate(
    grid, size=(new_grid, new_grid), mode="bicubic", align_corners=False
  )
  expected = expected.permute(0, 2, 3, 1).reshape(-1, 5).numpy()
  assert got.shape == (1 + new_grid * new_grid, 5)
  np.testing.assert_array_equal(got[0], pos[0])
  np.testing.assert_allclose(got[1:], expected, atol=1e-6)  # torch in float64


def test_block_names_and_sown_attention(tiny_clip, ref):
  _, directory = tiny_clip
  module, params = models.load(directory)
  _, images = ref.random_images(np.random.RandomState(0), 2, 32)
  ids = np.array([[97, 5, 98]])
  logits, state = module.clone(sow_attention=(1,)).apply(
    {"params": params}, images, ids, mutable=["intermediates"]
  )
  vision = state["intermediates"]["vision"]
  assert sorted(k for k in vision if k.startswith("block_")) == [
    "block_0",
    "block_1",
  ]
  assert "attn" not in vision["block_0"]  # fused: nothing materialised
  assert set(state["intermediates"]["text"]["block_0"]) == {"norm1", "tokens"}
  probs = vision["block_1"]["attn"]["probs"][0]
  # the last block computes the CLS token only (cls_only, the VLM's default):
  # [B, heads, the CLS query, 1 + 4x4 patches]
  assert probs.shape == (2, 4, 1, 17)
  np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-6)
  assert vision["block_0"]["norm1"][0].shape == (2, 17, 32)
  assert vision["block_0"]["tokens"][0].shape == (2, 17, 32)
  assert vision["block_1"]["norm1"][0].shape == (2, 17, 32)
  assert vision["block_1"]["tokens"][0].shape == (2, 1, 32)
  assert logits.shape == (2, 1)
  full_logits, full_state = module.clone(
    sow_attention=(1,), cls_only=False
  ).apply({"params": params}, images, ids, mutable=["intermediates"])
  full_vision = full_state["intermediates"]["vision"]
  full_probs = full_vision["block_1"]["attn"]["probs"][0]
  assert full_probs.shape == (2, 4, 17, 17)  # [B, heads, 1 + 4x4 patches, same]
  np.testing.assert_allclose(probs[:, :, 0], full_probs[:, :, 0], atol=1e-6)
  np.testing.assert_allclose(
    vision["block_1"]["tokens"][0][:, 0],
    full_vision["block_1"]["tokens"][0][:, 0],
    atol=1e-5,
  )
  np.testing.assert_allclose(logits, full_logits, rtol=1e-5)


def test_perturbation_gradients_are_the_gradients_of_attention(tiny_clip, ref):
  _, directory = tiny_clip
  module, params = models.load(directory)
  module = module.clone(sow_attention=(0, 1))
  _, images = ref.random_images(np.random.RandomState(0), 2, 32)
  ids = np.array([[97, 5, 98], [97, 6, 98]])
  shapes = jax.eval_shape(module.init, jax.random.key(0), images, ids)[
    "perturbations"
  ]
  perturbations = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes)

  def score(perturbations):
    logits = module.apply(
      {"params": params, "perturbations": perturbations}, images, ids
    )
    return logits[0, 1] + 0.5 * logits[1, 0]

  score_and_grad = jax.jit(
    jax.value_and_grad(score)
  )  # one compilation for all calls
  _, grads = score_and_grad(perturbations)
  grad = grads["vision"]["block_1"]["attn"]["probs"]
  assert grad.shape == (2, 4, 1, 17) and float(jnp.abs(grad).max()) > 0
  # the text tower exposes its block outputs, never its (fused) attention
  assert set(grads["text"]["block_0"]) == {"norm1", "tokens"}
  direction = jax.random.normal(jax.random.key(1), grad.shape)
  step = 1e-2

  def shifted(sign):
    p = jax.tree.map(jnp.zeros_like, perturbations)
    p["vision"]["block_1"]["attn"]["probs"] = sign * step * direction
    return score_and_grad(p)[0]

  finite_difference = (shifted(1.0) - shifted(-1.0)) / (2 * step)
  np.testing.assert_allclose(
    finite_difference, jnp.vdot(grad, direction), rtol=2e-3
  )


# float32 agreement of the fused and the materialised attention paths, as the
# largest abs difference over the largest abs value of each output. Measured:
# CPU branch 0 (the same einsums); dot_product_attention branch 3e-7 (logits)
# and 1e-6 (gradients) for CLIP, 7e-7 and 3.5e-5 for BLIP, whose random timm
# tower ends in a LayerNorm of a nearly constant CLS token that amplifies
# float32 rounding (its image-side gradients reach 4.7, the rest ~1e-2).
FUSED_RTOL = 1e-4


def _training_outputs(module, params, images, ids, mask):
  """(logits [B, B], contrastive loss, its gradient w.r.t. every param)."""

  def loss(params):
    logits = module.apply({"params": params}, images, ids, mask)
    labels = jnp.arange(logits.shape[0])
    ce = -jax.nn.log_softmax(logits)[labels, labels].mean()
    ce_t = -jax.nn.log_softmax(logits.T)[labels, labels].mean()
    return (ce + ce_t) / 2, logits

  (value, logits), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(
    params
  )
  return logits, value, grads


@pytest.mark.parametrize("family", ["clip", "blip"])
def test_fused_attention_trains_and_scores_like_the_materialised(
  family, tiny_clip, tiny_blip, ref, monkeypatch
):
  """Logits (zero-shot accuracy), loss and every gradient (a training step)
  agree to FUSED_RTOL whether the image tower materialises its attention
  (all blocks sown, as before) or runs it fused, on CPU (einsums) and through
  `jax.nn.dot_product_attention` (the GPU/TPU branch, forced here); the text
  towers (CLIP causal + padding mask, BERT padding mask) go through the same
  two branches."""
  _, directory = tiny_clip if family == "clip" else tiny_blip
  module, params = models.load(directory)
  size = module.config.vision.image_size
  _, images = ref.random_images(np.random.RandomState(1), 3, size)
  ids = np.array([[97, 5, 7, 98], [97, 6, 98, 1], [97, 98, 1, 1]])
  mask = (np.arange(4) < np.array([[4], [3], [2]])).astype(np.int32)
  every_block = tuple(range(module.config.vision.depth))
  expected = _training_outputs(
    module.clone(sow_attention=every_block), params, images, ids, mask
  )
  fused = {"cpu": _training_outputs(module, params, images, ids, mask)}
  monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
  fused["dot_product_attention"] = _training_outputs(
    module, params, images, ids, mask
  )
  for branch, got in fused.items():
    for name, want, have in zip(("logits", "loss", "grads"), expected, got):
      want, have = jax.tree.leaves(want), jax.tree.leaves(have)
      scale = max(float(jnp.abs(w).max()) for w in want)
      error = max(float(jnp.abs(w - h).max()) for w, h in zip(want, have))
      assert error <= FUSED_RTOL * scale, (branch, name, error / scale)


@pytest.mark.parametrize("family", ["clip", "blip"])
def test_cls_only_last_block_trains_and_scores_like_the_full_tower(
  family, tiny_clip, tiny_blip, ref
):
  """The image tower's last block on the CLS token alone (the VLM's default)
  gives the logits (zero-shot accuracy), the contrastive loss and every
  parameter gradient (a training step) of the full last block. Measured
  (largest abs difference over the largest abs value): CLIP 5e-7 / 1e-7 /
  9e-7, BLIP 0 / 0 / 1.6e-6 (rounding: XLA sums the one-row products in
  another order)."""
  _, directory = tiny_clip if family == "clip" else tiny_blip
  module, params = models.load(directory)
  assert module.cls_only
  size = module.config.vision.image_size
  _, images = ref.random_images(np.random.RandomState(2), 3, size)
  ids = np.array([[97, 5, 7, 98], [97, 6, 98, 1], [97, 98, 1, 1]])
  mask = (np.arange(4) < np.array([[4], [3], [2]])).astype(np.int32)
  full = _training_outputs(
    module.clone(cls_only=False), params, images, ids, mask
  )
  cls_only = _training_outputs(module, params, images, ids, mask)
  for name, want, have in zip(("logits", "loss", "grads"), full, cls_only):
    want, have = jax.tree.leaves(want), jax.tree.leaves(have)
    scale = max(float(jnp.abs(w).max()) for w in want)
    error = max(float(jnp.abs(w - h).max()) for w, h in zip(want, have))
    assert error <= 1e-5 * scale, (name, error / scale)
  tokens = module.apply(
    {"params": params}, images, method=lambda m, x: m.vision(x)
  )
  assert tokens.shape == (3, 1, module.config.vision.width)


def test_sow_attention_out_of_range_is_an_error(tiny_clip, ref):
  _, directory = tiny_clip
  module, params = models.load(directory)
  _, images = ref.random_images(np.random.RandomState(0), 1, 32)
  with pytest.raises(ValueError, match=r"sow_attention names blocks \[2\]"):
    module.clone(sow_attention=(0, 2)).apply(
      {"params": params}, images, method="encode_image"
    )


def test_bfloat16_compute_is_close_to_float32(tiny_clip, ref):
  _, directory = tiny_clip
  module, params = models.load(directory)
  bf16_module, _ = models.load(directory, dtype=jnp.bfloat16)
  _, images = ref.random_images(np.random.RandomState(0), 2, 32)
  full = module.apply({"params": params}, images, method="encode_image")
  half = bf16_module.apply({"params": params}, images, method="encode_image")
  assert half.dtype == jnp.float32
  relative = float(jnp.abs(half - full).max() / jnp.abs(full).max())
  assert 0 < relative < 0.05


def test_config_and_input_checks(tiny_clip, ref):
  with pytest.raises(ValueError, match="not a multiple of patch_size"):
    models.ViTConfig(image_size=225, patch_size=16)
  with pytest.raises(ValueError, match="not divisible by num_heads"):
    models.ViTConfig(width=100, num_heads=3)
  _, directory = tiny_clip
  module, params = models.load(directory)
  _, images = ref.random_images(np.random.RandomState(0), 1, 40)
  with pytest.raises(AssertionError):
    module.apply({"params": params}, images, method="encode_image")
