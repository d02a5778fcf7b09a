"""Attention rollout (Abnar & Zuidema, "Quantifying Attention Flow in
Transformers", ACL 2020): the gradient-free baseline.

Per block b, the residual connection is modelled by mixing the head-averaged
attention with the identity and re-normalizing rows:

    A_hat_b = row_normalize(residual * I + (1 - residual) * mean_heads(A_b))
    R = A_hat_L @ ... @ A_hat_s          (blocks s = start_layer .. L-1)
    heatmap = R[CLS, patches]

with residual = 0.5 as in the paper. The map does not depend on the explained
class (no gradient is involved). Only R's CLS row is read, so it is computed
as a row vector from the last block down (``r = e_CLS; r = r @ A_hat_b``),
O(N^2) per block instead of the O(N^3) of forming R; with ``s`` the row sums
of ``A_hat_b``'s numerator, ``r @ A_hat_b = residual * (r / s) + (1 -
residual) * sum_h ((r / s) / H) @ A_h``, one matrix-vector product over
(heads, tokens) instead of a (strided, slow on XLA:CPU) mean over heads.
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
class Rollout:
  """Abnar & Zuidema's attention rollout (no gradient, class-agnostic).

  start_layer: first block used (default all blocks); residual: identity weight.
  """

  start_layer: int = 0
  residual: float = 0.5
  name: ClassVar[str] = "rollout"
  kind: ClassVar[str] = "tokens"
  signed: ClassVar[bool] = False
  needs_gradients: ClassVar[bool] = False

  def sites(self, depth: int) -> tuple[Site, ...]:
    return tuple((b, ATTENTION) for b in blocks_from(self.start_layer, depth))

  def relevance(self, activations, gradients) -> jax.Array:
    del gradients
    return attention_rollout(activations, self.residual)


def attention_rollout(
  attentions: Sequence[jax.Array], residual: float = 0.5
) -> jax.Array:
  """Rolled-out attention of the CLS token to every patch token.

  Args:
    attentions: per used block, in forward order, post-softmax A_b:
      [B, heads, N, N] (N = 1 + patches, CLS at index 0); the last may be
      only its CLS row [B, heads, 1, N], the one row of it that is read.
    residual: weight of the identity (the skip connection), in [0, 1].

  Returns:
    [B, N - 1] float32, >= 0 (rows of R sum to 1, so this sums to <= 1);
    all NaN for a sample with a NaN or an inf in any of its attentions.
  """
  if not attentions:
    raise ValueError("attention rollout needs at least one block.")
  if not 0.0 <= residual <= 1.0:
    raise ValueError(f"residual must be in [0, 1]; got {residual}.")
  batch, heads, tokens = check_maps(attentions)
  # The last block's product starts from r = e_CLS: its CLS row alone.
  cls_rows = attentions[-1][:, :, 0].astype(jnp.float32)  # [B, heads, N]
  cls_sum = residual + (1.0 - residual) * cls_rows.sum(-1).mean(-1)
  row = jnp.zeros((batch, tokens), jnp.float32).at[:, 0].set(residual)
  row = (row + (1.0 - residual) * cls_rows.mean(axis=1)) / cls_sum[:, None]
  for attention in reversed(attentions[:-1]):
    attention = attention.astype(jnp.float32)
    sums = residual + (1.0 - residual) * attention.sum(axis=-1).mean(axis=1)
    scaled = row / sums
    per_head = jnp.broadcast_to(
      scaled[:, None] * ((1.0 - residual) / heads), (batch, heads, tokens)
    )
    row = residual * scaled + jnp.einsum(
      "bhi,bhij->bj", per_head, attention, precision=jax.lax.Precision.HIGHEST
    )
  return nan_where_nonfinite(row[:, 1:], attentions)


HEATMAP = Rollout
