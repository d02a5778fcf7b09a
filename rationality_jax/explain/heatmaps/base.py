"""What the explainer asks of a heatmap, and what the token heatmaps share.

A heatmap is a frozen dataclass (its fields are its options) with a ``name``
and a ``kind``:

* a **token** heatmap (``kind = 'tokens'``: Chefer, rollout, Grad-CAM) names
  the sites of the image tower it reads and turns what was sown there (and
  the score's gradient with respect to it, if it ``needs_gradients``) into a
  patch map (`TokenHeatmap`). A site is a block index and a path inside the
  block, ``(b, ('attn', 'probs'))`` for the attention probabilities of block
  ``b``, ``(b, ('norm1',))`` for its first LayerNorm output; the image tower
  perturbs and sows them (`rationality_jax.models.vit`).
* a **pixel** heatmap (``kind = 'pixels'``: input gradients, gradient x input,
  integrated gradients) gets the gradient of the score with respect to the
  images (`ImageGradient`) and makes its pixel map from it (`PixelHeatmap`).

Each also says whether its raw map is ``signed`` (gradient x input and
integrated gradients: negative where the pixel speaks against the class);
the others are >= 0. The explainer then keeps what `postprocess.SIGNED_MAPS`
asks of a signed map (by default its positive part) before min-max.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Protocol

import chex
import jax

Site = tuple[int, tuple[str, ...]]  # (block index, path inside the block)

ATTENTION = ("attn", "probs")


class TokenHeatmap(Protocol):
  """A heatmap computed from what the tower sows at some of its sites."""

  name: ClassVar[str]
  kind: ClassVar[str]  # 'tokens'
  signed: ClassVar[bool]  # may the raw map be negative (`postprocess`)
  needs_gradients: ClassVar[bool]

  def sites(self, depth: int) -> tuple[Site, ...]:
    """The sites read, in forward order, for a tower of `depth` blocks."""

  def relevance(
    self,
    activations: Sequence[jax.Array],
    gradients: Sequence[jax.Array] | None,
  ) -> jax.Array:
    """[B, patches] map from the activations sown at `sites` (and the score's
    gradients with respect to them; None without `needs_gradients`)."""


class ImageGradient(Protocol):
  """The score's gradient with respect to the images, from the explainer."""

  def __call__(
    self, images: jax.Array, classes: jax.Array | None = None
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(dS/dimages [B, H, W, C], logits [B, C], classes [B]) at `images`:
    one batched forward + backward. Without `classes`, those explained at
    `images` themselves (the labels or the prediction there)."""

  def classes(self, images: jax.Array) -> jax.Array:
    """[B] int32 classes explained at `images`, without a gradient (the
    labels, or the prediction: one forward)."""

  def forward(self, images: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(logits [B, C], classes [B]) at `images`: one forward, no gradient
    (for a heatmap that does not read the model, such as `random`)."""


class PixelHeatmap(Protocol):
  """A heatmap computed from gradients with respect to the images."""

  name: ClassVar[str]
  kind: ClassVar[str]  # 'pixels'
  signed: ClassVar[bool]  # may the raw map be negative (`postprocess`)

  def pixel_map(
    self, images: jax.Array, gradient: ImageGradient
  ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(logits [B, C] at `images`, classes [B], map [B, H, W])."""


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
