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

import dataclasses
from typing import ClassVar

import chex
import jax
import jax.numpy as jnp

from rationality_jax.explain.heatmaps.base import Site
from rationality_jax.explain.heatmaps.base import blocks_from
from rationality_jax.explain.postprocess import nan_where_nonfinite

GRAD_CAM_SITES = ("norm1", "tokens")


@dataclasses.dataclass(frozen=True)
class GradCAM:
  """Grad-CAM on a block's tokens.

  layer: the block (default -1, the last). site: ``'norm1'`` (its first
    LayerNorm output, the default, as pytorch-grad-cam advises for ViTs) or
    ``'tokens'`` (the block output).
  """

  layer: int = -1
  site: str = "norm1"
  name: ClassVar[str] = "gradcam"
  kind: ClassVar[str] = "tokens"
  signed: ClassVar[bool] = False
  needs_gradients: ClassVar[bool] = True

  def __post_init__(self):
    if self.site not in GRAD_CAM_SITES:
      raise ValueError(
        f"Grad-CAM site {self.site!r} is not one of {GRAD_CAM_SITES}."
      )

  def sites(self, depth: int) -> tuple[Site, ...]:
    block = blocks_from(self.layer, depth)[0]
    return ((block, (self.site,)),)

  def relevance(self, activations, gradients) -> jax.Array:
    return grad_cam_tokens(activations[0], gradients[0])


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


HEATMAP = GradCAM
