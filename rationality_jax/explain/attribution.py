"""Pixel-space attributions: input gradients, gradient x input, integrated gradients.

All three reduce a per-pixel, per-channel quantity over the colour channels to
a [B, H, W] map, in the model's input space (the normalized images):

* input gradients (Simonyan et al. 2014, "saliency"): ``max_c |dS/dx_c|``
  (max of the absolute value over channels, as in the paper);
* gradient x input (Shrikumar et al. 2016): ``sum_c x_c * dS/dx_c`` (signed);
* integrated gradients (Sundararajan et al. 2017):
  ``sum_c (x_c - x0_c) * integral_0^1 dS/dx_c(x0 + a (x - x0)) da`` (signed),
  the integral approximated on `steps` intervals by the trapezoid rule (default;
  ``steps + 1`` gradient evaluations, exact for a linear score) or the right
  Riemann rule (``steps`` evaluations, a = 1/m .. 1). Completeness: the map
  sums to ~ S(x) - S(x0).

Signed maps are min-max normalized like every other map (so the most negative
pixel maps to 0); RMA then sees only the relative ordering the study uses.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

RULES = ("trapezoid", "right")


def input_gradient_map(gradients: jax.Array) -> jax.Array:
  """max_c |g|: [B, H, W, C] -> [B, H, W]."""
  return jnp.abs(gradients).max(axis=-1)


def gradient_x_input_map(images: jax.Array, gradients: jax.Array) -> jax.Array:
  """sum_c x * g: [B, H, W, C] (both) -> [B, H, W]."""
  return (images * gradients).sum(axis=-1)


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
