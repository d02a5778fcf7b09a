"""What the token heatmaps share: the sites they read and the attention maps.

A site is a block index and a path inside the block, ``(b, ('attn',
'probs'))`` for the attention probabilities of block ``b``, ``(b,
('norm1',))`` for its first LayerNorm output; the image tower perturbs and sows
them (`rationality_jax.models.vit`).
"""

from __future__ import annotations

from collections.abc import Sequence

import chex
import jax

Site = tuple[int, tuple[str, ...]]  # (block index, path inside the block)

ATTENTION = ("attn", "probs")


def blocks_from(start_layer: int, depth: int) -> range:
  """Blocks start_layer .. depth-1; negative start counts from the end."""
  start = start_layer + depth if start_layer < 0 else start_layer
  if not 0 <= start < depth:
    raise ValueError(
      f"start_layer {start_layer} is out of range for a tower of "
      f"{depth} blocks; use 0..{depth - 1} or -{depth}..-1."
    )
  return range(start, depth)


def check_maps(
  attentions: Sequence[jax.Array], gradients: Sequence[jax.Array] | None = None
) -> tuple[int, int, int]:
  """(B, heads, N) of per-block maps [B, heads, N, N] (and their gradients,
  same shapes), of which the last may be its CLS row [B, heads, 1, N]
  (`VisionTransformer.cls_only`): a ValueError naming the block otherwise."""
  chex.assert_rank(attentions[-1], 4)
  batch, heads, _, tokens = attentions[-1].shape
  full = (batch, heads, tokens, tokens)
  for b, attention in enumerate(attentions):
    allowed = [full]
    if b == len(attentions) - 1:
      allowed.append((batch, heads, 1, tokens))
    shapes = [attention.shape]
    if gradients is not None:
      shapes.append(gradients[b].shape)
    if any(shape not in allowed for shape in shapes) or len(set(shapes)) > 1:
      raise ValueError(
        f"block {b} of {len(attentions)} has maps of shapes {shapes}; "
        f"expected {' or '.join(map(str, allowed))} (only the last block "
        "may be its CLS row, and a gradient has its map's shape)."
      )
  return batch, heads, tokens
