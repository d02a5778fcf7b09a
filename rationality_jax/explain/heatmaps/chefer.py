"""Chefer et al.'s gradient-weighted attention relevance, from arrays.

Chefer, Gur, Wolf, "Generic Attention-model Explainability for Interpreting
Bi-Modal and Encoder-Decoder Transformers" (ICCV 2021), as used by the study's
release (Transformer-MM-Explainability's CLIP notebook):

    for each block b >= start_layer:
        cam_b = mean_heads(clamp(dS/dA_b * A_b, min=0))          # [N, N]
        R = R + cam_b @ R                                         # R starts at I
    heatmap = R[CLS, patches]

Only the CLS row of R is read, and R = (I + cam_L) ... (I + cam_s), so the row
is computed as a vector, from the last block down:
``r = e_CLS; r = r + r @ cam_b`` for b = L-1 .. start_layer, the same product
in another order: O(N^2) per block instead of the O(N^3) of forming R. The
head mean is folded into that product, ``r @ mean_h(X_h) = sum_h (r / H) @
X_h``: one matrix-vector product over (heads, tokens) that reads every map
once, instead of a strided reduction over the head axis (slow on XLA:CPU; see
docs/benchmarks.md).

`Chefer` names the blocks it reads; `explainer.make_explainer` runs the model
and collects ``A_b`` (sown) and ``dS/dA_b`` (gradient w.r.t. the perturbed
attention) for every sample of a batch at once.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from rationality_jax.explain.heatmaps.base import ATTENTION
from rationality_jax.explain.heatmaps.base import Site
from rationality_jax.explain.heatmaps.base import blocks_from
from rationality_jax.explain.heatmaps.base import check_maps
from rationality_jax.explain.postprocess import nan_where_nonfinite


@dataclasses.dataclass(frozen=True)
class Chefer:
  """Chefer et al.'s gradient-weighted attention relevance (the study's).

  start_layer: first block used; 0 = all blocks (the default, ours for every
    adaptation, the study's for LP/FT), -1 = last block only (the study's
    ZS/FLCP choice, `study_method`). Negative counts from the end.
  """

  start_layer: int = 0
  name: ClassVar[str] = "chefer"
  kind: ClassVar[str] = "tokens"
  signed: ClassVar[bool] = False
  needs_gradients: ClassVar[bool] = True

  def sites(self, depth: int) -> tuple[Site, ...]:
    return tuple((b, ATTENTION) for b in blocks_from(self.start_layer, depth))

  def relevance(self, activations, gradients) -> jax.Array:
    return chefer_relevance(activations, gradients)


def chefer_relevance(
  attentions: Sequence[jax.Array], gradients: Sequence[jax.Array]
) -> jax.Array:
  """Relevance of every patch token for the CLS token.

  Args:
    attentions: per used block, in forward order, the post-softmax attention
      A_b: [B, heads, N, N] (N = 1 + patches, CLS at index 0); the last may
      be only its CLS row [B, heads, 1, N], the one row of it that is read.
    gradients: dS/dA_b, same shapes.

  Returns:
    [B, N - 1] float32 relevance of the patch tokens (row-major grid order),
    >= 0 (accumulated in float32 whatever the inputs' dtype); all NaN for a
    sample with a NaN or an inf in any of its attentions or gradients. With
    no block (empty lists) there is nothing to explain: error.
  """
  if not attentions or len(attentions) != len(gradients):
    raise ValueError(
      f"need one gradient per attention map and at least one "
      f"block; got {len(attentions)} attentions and "
      f"{len(gradients)} gradients."
    )
  batch, heads, tokens = check_maps(attentions, gradients)
  # The last block's product starts from r = e_CLS: its CLS row alone.
  cls_rows = gradients[-1][:, :, 0].astype(jnp.float32) * attentions[-1][
    :, :, 0
  ].astype(jnp.float32)
  row = jnp.zeros((batch, tokens), jnp.float32).at[:, 0].set(1.0)
  row = row + jnp.maximum(cls_rows, 0.0).mean(axis=1)
  for attention, gradient in zip(
    reversed(attentions[:-1]), reversed(gradients[:-1])
  ):
    weighted = gradient.astype(jnp.float32) * attention.astype(jnp.float32)
    per_head = jnp.broadcast_to(row[:, None] / heads, (batch, heads, tokens))
    row = row + jnp.einsum(
      "bhi,bhij->bj",
      per_head,
      jnp.maximum(weighted, 0.0),
      precision=jax.lax.Precision.HIGHEST,
    )
  return nan_where_nonfinite(row[:, 1:], [*attentions, *gradients])


HEATMAP = Chefer
