"""Grad-CAM (Selvaraju et al. 2017) on ViT tokens, as pytorch-grad-cam does for ViTs.

The "feature map" is one block's token tensor with the CLS token dropped and the
patch tokens laid out on the grid (pytorch-grad-cam's ``reshape_transform``);
its default, and ours, is the output of the last block's first LayerNorm
(``norm1``, before the attention) because the last block's output only feeds
the CLS token through LayerNorm and the projection:

    w_c = mean over patch tokens of dS/dact[:, c]                 # [D]
    cam = ReLU(sum_c w_c * act[:, c])                             # [patches]
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from rationality_jax.explain.postprocess import nan_where_nonfinite


def grad_cam_tokens(activations: jax.Array, gradients: jax.Array) -> jax.Array:
  """Grad-CAM over the patch tokens.

  Args:
    activations: [B, N, D] token tensor (CLS at index 0).
    gradients: dS/d activations, [B, N, D].

  Returns:
    [B, N - 1] float32, >= 0, patch tokens in row-major grid order; all NaN
    for a sample with a NaN or an inf in its activations or gradients.
  """
  chex.assert_rank(activations, 3)
  chex.assert_equal_shape([activations, gradients])
  patches = activations[:, 1:].astype(jnp.float32)
  weights = gradients[:, 1:].astype(jnp.float32).mean(axis=1)
  cam = jnp.einsum(
    "bnd,bd->bn", patches, weights, precision=jax.lax.Precision.HIGHEST
  )
  return nan_where_nonfinite(jnp.maximum(cam, 0.0), [activations, gradients])
