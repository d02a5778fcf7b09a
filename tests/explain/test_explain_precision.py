"""Mixed precision: heatmaps and RMA in bfloat16 / float16 against float32.

The same random-weight CLIP runs with float32 everywhere and through
`models.vlm.with_precision` (compute and parameters in the half type; attention
logits, softmax, LayerNorm statistics and the relevance accumulation stay
float32). The bounds are about 3x the differences measured on this CPU (see
docs/explain.md, "Mixed precision"), so a regression in the float32 islands
(e.g. a softmax or a relevance sum in half precision) fails them.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import explain
from rationality_jax.explain import targets
from rationality_jax.models import vlm

PRECISIONS = ("bfloat16", "float16")
# (max abs heatmap difference, max abs RMA difference) allowed, per dtype.
TINY_BOUNDS = {"bfloat16": (5e-2, 6e-3), "float16": (1e-2, 1e-3)}
B16_BOUNDS = {"bfloat16": (4e-2, 1e-3), "float16": (5e-3, 2e-4)}
TINY_METHODS = [
  explain.Chefer(-1),
  explain.Chefer(0),
  explain.GradCAM(),
  explain.Rollout(),
  explain.InputGradients(),
  explain.IntegratedGradients(steps=8),
]


def _differences(module, params, method, batch, dtypes=PRECISIONS):
  """{dtype: (heatmap, RMA) max abs differences against float32}."""
  images, class_embeddings, labels, masks = batch
  args = (
    {"class_embeddings": jnp.asarray(class_embeddings)},
    jnp.asarray(images.transpose(0, 2, 3, 1)),
    jnp.asarray(labels),
    jnp.asarray(masks),
  )
  full = explain.make_explainer(module, targets.zero_shot, method)(
    params, *args
  )
  differences = {}
  for dtype in dtypes:
    half_module, half_params = vlm.with_precision(module, params, dtype, dtype)
    kernel = half_params["vision"]["block_0"]["attn"]["qkv"]["kernel"]
    assert kernel.dtype == jnp.dtype(dtype)
    half = explain.make_explainer(half_module, targets.zero_shot, method)(
      half_params, *args
    )
    assert half["heatmap"].dtype == jnp.float32
    assert np.isfinite(np.asarray(half["heatmap"])).all()
    differences[dtype] = (
      float(jnp.abs(half["heatmap"] - full["heatmap"]).max()),
      float(jnp.abs(half["rma"] - full["rma"]).max()),
    )
  return differences


@pytest.mark.parametrize("method", TINY_METHODS, ids=repr)
def test_half_precision_heatmaps_stay_close_to_float32(
  tiny_clip, make_batch, method
):
  _, module, params = tiny_clip
  batch = make_batch(8, 48, 5, 16)
  for dtype, (heatmap, rma) in _differences(
    module, params, method, batch
  ).items():
    assert heatmap <= TINY_BOUNDS[dtype][0], (dtype, heatmap)
    assert rma <= TINY_BOUNDS[dtype][1], (dtype, rma)


@pytest.mark.slow
@pytest.mark.parametrize("method", [explain.Chefer(-1), explain.Chefer(0)])
def test_b16_half_precision_heatmaps_stay_close_to_float32(
  b16_clip, make_batch, method
):
  """ViT-B/16 at 224 px, Chefer over the last block and over all blocks."""
  _, module, params = b16_clip
  batch = make_batch(2, 224, 10, 512, seed=5)
  for dtype, (heatmap, rma) in _differences(
    module, params, method, batch
  ).items():
    assert heatmap <= B16_BOUNDS[dtype][0], (dtype, heatmap)
    assert rma <= B16_BOUNDS[dtype][1], (dtype, rma)


def test_precision_policy_keeps_the_logit_scale_float32(tiny_clip):
  _, module, params = tiny_clip
  half_module, half_params = vlm.with_precision(
    module, params, "bfloat16", "float16"
  )
  assert half_module.dtype == jnp.bfloat16
  assert half_module.param_dtype == jnp.float16
  assert half_params["logit_scale"].dtype == jnp.float32
  assert half_params["vision"]["pos_embedding"].dtype == jnp.float16
  with pytest.raises(ValueError, match="dtype=float64 is not one of"):
    vlm.with_precision(module, params, "float64", "float32")
