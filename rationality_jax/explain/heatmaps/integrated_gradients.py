"""Integrated gradients (Sundararajan et al. 2017), summed over channels.

``sum_c (x_c - x0_c) * integral_0^1 dS/dx_c(x0 + a (x - x0)) da`` in the
model's input space (the normalized images), a [B, H, W] map, the integral
approximated on `steps` intervals by the trapezoid rule (default; ``steps + 1``
gradient evaluations, exact for a linear score) or the right Riemann rule
(``steps`` evaluations, a = 1/m .. 1). Completeness: the map sums to ~ S(x) -
S(x0).

The map is signed (``signed`` True): the explainer keeps its positive part
before min-max by default, or min-max normalizes the raw map
(``signed='minmax'``, the release's); see
`explain.postprocess.signed_relevance`.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp
import numpy as np

RULES = ("trapezoid", "right")


@dataclasses.dataclass(frozen=True)
class IntegratedGradients:
  """Integrated gradients, summed over channels (signed).

  steps: number of intervals m on the straight path from the baseline.
  baseline: in the model's input space (normalized images): a float or one
    value per channel. 0.0 is the dataset-mean image; a black image is
    ``-mean / std`` per channel (see `black_baseline`).
  rule: ``'trapezoid'`` (m + 1 evaluations, default) or ``'right'`` (m).
  """

  steps: int = 32
  baseline: float | tuple[float, ...] = 0.0
  rule: str = "trapezoid"
  name: ClassVar[str] = "integrated_gradients"
  kind: ClassVar[str] = "pixels"
  signed: ClassVar[bool] = True

  def __post_init__(self):
    integration_points(self.steps, self.rule)  # validates

  def pixel_map(self, images, gradient):
    """`base.PixelHeatmap`: ``lax.scan`` over the path points, each one
    batched forward + backward (the memory of one batch, whatever `steps`).
    The classes are those explained at the image itself (for
    ``target='predicted'``, not along the path); the logits are the last
    point's, alpha = 1: the image."""
    baseline = jnp.broadcast_to(
      jnp.asarray(self.baseline, images.dtype), images.shape
    )
    classes = gradient.classes(images)
    alphas, weights = integration_points(self.steps, self.rule)

    def step(total, alpha_weight):
      alpha, weight = alpha_weight
      g, step_logits, _ = gradient(
        baseline + alpha * (images - baseline), classes
      )
      return total + weight * g, step_logits

    mean_grads, step_logits = jax.lax.scan(
      step,
      jnp.zeros_like(images),
      (jnp.asarray(alphas), jnp.asarray(weights)),
    )
    pixels = integrated_gradients_map(images, baseline, mean_grads)
    return step_logits[-1], classes, pixels


def black_baseline(
  mean: Sequence[float], std: Sequence[float]
) -> tuple[float, ...]:
  """Per-channel value of a black image after ``(x - mean) / std``."""
  return tuple(-m / s for m, s in zip(mean, std))


def integration_points(steps: int, rule: str) -> tuple[np.ndarray, np.ndarray]:
  """Path positions a_k in [0, 1] and quadrature weights w_k (sum to 1).

  trapezoid: a = 0, 1/m, ..., 1 with weights 1/(2m), 1/m, ..., 1/m, 1/(2m);
  right:     a = 1/m, ..., 1 with weights 1/m.
  """
  if steps < 1:
    raise ValueError(f"integrated gradients needs steps >= 1; got {steps}.")
  if rule == "trapezoid":
    alphas = np.arange(steps + 1, dtype=np.float64) / steps
    weights = np.full(steps + 1, 1.0 / steps)
    weights[[0, -1]] = 0.5 / steps
  elif rule == "right":
    alphas = np.arange(1, steps + 1, dtype=np.float64) / steps
    weights = np.full(steps, 1.0 / steps)
  else:
    raise ValueError(f"rule {rule!r} is not one of {RULES}.")
  return alphas.astype(np.float32), weights.astype(np.float32)


def integrated_gradients_map(
  images: jax.Array, baseline: jax.Array, mean_gradients: jax.Array
) -> jax.Array:
  """sum_c (x - x0) * mean path gradient: [B, H, W, C] -> [B, H, W]."""
  return ((images - baseline) * mean_gradients).sum(axis=-1)


HEATMAP = IntegratedGradients
