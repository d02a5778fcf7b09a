"""ROAD's noisy linear imputation, batched and matrix-free, in JAX.

Rong, Leemann, Borisov, Kasneci, Kasneci, "A Consistent and Efficient
Evaluation Strategy for Attribution Methods" (ICML 2022), section 4: a pixel
removed from the image is filled from its neighbours, not by a constant, so
that the shape of the removed region (the heatmap's ranking) does not leak
to the model through the fill. For each removed pixel i,

    sum_j w_ij (x_i - x_j) = 0

over its 8 neighbours j inside the image, with ``w = 1/6`` for the 4 direct
and ``1/12`` for the 4 diagonal ones (`WEIGHTS`; together 1), the kept
neighbours' values on the right-hand side; one system per image, one
right-hand side per channel; then ``noise * N(0, 1)`` is added to the
imputed pixels only (the reference's ``NoisyLinearImputer``, ``noise=0.01``,
which builds the system with ``scipy.sparse`` and calls ``spsolve`` per
image).

Solved here without a matrix: with ``D_i`` the sum of pixel i's in-image
neighbour weights (1 inside, less on the border), the system is ``L x = b``
on the removed pixels, ``(L x)_i = sum_j w_ij (x_i - x_j)`` over the removed
neighbours j plus ``(D_i - their weights) x_i``, and ``b_i = sum_j w_ij
v_j`` over the kept ones (`laplacian`, a 3 x 3 stencil summed as
differences). L is symmetric and diagonally dominant, positive definite
wherever a connected removed region touches a kept pixel, so conjugate
gradients with the Jacobi preconditioner ``1 / D``, from 0, converge. Every
(image, channel) plane is its own CG, stopped on its own once its residual
is at most ``tolerance`` times its right-hand side's norm (a plane that is
done no longer changes), or after ``iterations`` steps; a result is thus the
same whatever else is in the batch.

Accuracy and cost: with `TOLERANCE` 1e-7 the fill matches scipy's
``spsolve`` of the reference system within 4e-6 (max abs, float32 images of
unit variance) on 224 x 224 images: half the image in one block (~500 CG
steps), everything but a 14 x 14 corner (~900 steps), half the pixels
scattered (~20 steps), 15 of 16 random 16-pixel patches (~540 steps); 1e-6
saves a tenth of the steps but lets white-noise images with patchy masks
drift to 9e-5. The steps grow with the width of the largest removed region
(~4 per pixel of side at worst), so `ITERATIONS` (2000) is a cap that 224 px
never reaches (a plane stopped by it keeps its last iterate). Each step is
one stencil pass and three reductions per plane.

Degenerate cases: a connected region of removed pixels with no kept
neighbour (the whole image, at the last deletion step or the first
insertion step) has a singular system (any constant solves it; ``spsolve``
fails). Its right-hand side is 0 there and CG from 0 never leaves 0, the
minimum-norm solution: the region is filled with 0, the dataset-mean colour
in the normalized input space, plus the noise. No removed pixel: the image
is returned as it is. A NaN or an inf in a kept pixel next to a removed one
fills all of that image's channel's removed pixels with NaN (a non-finite
kept pixel elsewhere stays where it is, as every kept pixel does).

The noise is deterministic per image: drawn from
``fold_in(key(seed), hash of the image's bits)`` (`seeding.image_keys`, as
the random control's maps are), so an image's fill does not depend on its
batch or position in it.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax.explain import seeding

# ROAD's neighbour weights (its ``neighbors_weights``) as a 3 x 3 stencil.
WEIGHTS = np.array(
  [[1 / 12, 1 / 6, 1 / 12], [1 / 6, 0.0, 1 / 6], [1 / 12, 1 / 6, 1 / 12]]
)
NOISE = 0.01
ITERATIONS = 2000
TOLERANCE = 1e-7


@functools.lru_cache(maxsize=16)
def _neighbour_weights(height: int, width: int) -> tuple:
  """((dy, dx, [H, W] float32), ...): per neighbour offset, its weight at
  each pixel whose neighbour lies inside the image, 0 where it does not."""
  out = []
  for dy, dx in zip(*np.nonzero(WEIGHTS)):
    dy, dx = int(dy) - 1, int(dx) - 1
    weight = np.zeros((height, width), np.float32)
    rows = slice(max(0, -dy), height - max(0, dy))
    cols = slice(max(0, -dx), width - max(0, dx))
    weight[rows, cols] = WEIGHTS[dy + 1, dx + 1]
    out.append((dy, dx, weight))
  return tuple(out)


def laplacian(u: jax.Array) -> jax.Array:
  """[..., H, W] planes -> [..., H, W]: ``sum_j w_ij (u_i - u_j)`` over each
  pixel's in-image neighbours j.

  Summed as differences: in float32 a ``D u - S u`` form loses the small
  differences of a smooth u to rounding, and CG then stalls ~1e-3 away from
  spsolve's solution when most of the image is removed (whatever the
  tolerance); summed as differences it gets within a few 1e-6."""
  height, width = u.shape[-2:]
  pad = [(0, 0)] * (u.ndim - 2) + [(1, 1), (1, 1)]
  padded = jnp.pad(u, pad)
  total = jnp.zeros_like(u)
  for dy, dx, weight in _neighbour_weights(height, width):
    neighbour = padded[..., 1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width]
    total = total + weight * (u - neighbour)
  return total


def _dot(a: jax.Array, b: jax.Array) -> jax.Array:
  """Per plane inner product: [N, H, W] x 2 -> [N, 1, 1]."""
  return jnp.sum(a * b, axis=(-2, -1), keepdims=True)


def _conjugate_gradients(planes, holes, iterations, tolerance):
  """CG with the Jacobi preconditioner on each [H, W] plane of `planes`
  (one system per plane, stopped on its own): (solution on the holes, 0
  elsewhere [N, H, W]; steps [N])."""
  weight = holes.astype(jnp.float32)
  diagonal = sum(w for *_, w in _neighbour_weights(*planes.shape[-2:]))
  inverse = weight / diagonal  # 1 / D on the holes, 0 elsewhere
  b = jnp.where(holes, -laplacian(jnp.where(holes, 0.0, planes)), 0.0)
  stop = tolerance**2 * _dot(b, b)
  z = inverse * b
  steps = jnp.zeros_like(stop, jnp.int32)
  state = (0, jnp.zeros_like(b), b, z, _dot(b, z), _dot(b, b), steps)

  def running(state):
    step, *_, rr, _ = state
    return (step < iterations) & jnp.any(rr > stop)

  def body(state):
    step, x, r, p, rz, rr, steps = state
    active = rr > stop
    ap = weight * laplacian(p)  # L p (p is 0 off the holes)
    pap = _dot(p, ap)
    alpha = jnp.where(active, rz / jnp.where(active, pap, 1.0), 0.0)
    x = x + alpha * p
    r = r - alpha * ap
    z = inverse * r
    rz_next = _dot(r, z)
    beta = jnp.where(active, rz_next / jnp.where(active, rz, 1.0), 0.0)
    p = z + beta * p
    steps = steps + active.astype(jnp.int32)
    return step + 1, x, r, p, rz_next, _dot(r, r), steps

  _, x, *_, steps = jax.lax.while_loop(running, body, state)
  x = jnp.where(jnp.isfinite(stop), x, jnp.nan)  # a NaN or inf next to a hole
  return x, steps[:, 0, 0]


def linear_fill(
  images: jax.Array,
  removed: jax.Array,
  *,
  iterations: int = ITERATIONS,
  tolerance: float = TOLERANCE,
) -> tuple[jax.Array, jax.Array]:
  """The noiseless imputation and the CG steps each system took.

  Args:
    images: [B, H, W, C] float.
    removed: [B, H, W] bool, the pixels to fill.
    iterations: the most CG steps.
    tolerance: a system is done when ``|r| <= tolerance * |b|``.

  Returns:
    (filled [B, H, W, C] float32: the images with the removed pixels solved
    for, steps [B, C] int32: the steps each (image, channel) took).
  """
  images = jnp.asarray(images, jnp.float32)
  batch, height, width, channels = images.shape
  # One plane per (image, channel), channels first: the stencil and the
  # reductions then run over contiguous rows (twice as fast on CPU).
  planes = images.transpose(0, 3, 1, 2).reshape(-1, height, width)
  holes = jnp.repeat(removed, channels, axis=0)
  x, steps = _conjugate_gradients(planes, holes, iterations, tolerance)
  x = x.reshape(batch, channels, height, width).transpose(0, 2, 3, 1)
  filled = jnp.where(removed[..., None], x, images)
  return filled, steps.reshape(batch, channels)


def normals(images: jax.Array, seed: int = 0) -> jax.Array:
  """[B, H, W, C] standard normal noise, each image's from its own bits
  (`seeding.image_keys`)."""
  keys = seeding.image_keys(images, seed)
  shape = images.shape[1:]
  return jax.vmap(lambda k: jax.random.normal(k, shape, jnp.float32))(keys)


def impute(
  images: jax.Array,
  removed: jax.Array,
  seed: int = 0,
  *,
  noise: float = NOISE,
  noise_field: jax.Array | None = None,
  iterations: int = ITERATIONS,
  tolerance: float = TOLERANCE,
) -> jax.Array:
  """ROAD's noisy linear imputation of the removed pixels (module docstring).

  Args:
    images: [B, H, W, C] float (the model's normalized input).
    removed: [B, H, W] bool: the pixels to fill; the others are returned
      bit for bit.
    seed: the noise's seed (each image's key is folded from it and the
      image's bits).
    noise: the noise's standard deviation (ROAD's 0.01; 0: none); may be
      traced.
    noise_field: [B, H, W, C] standard normal draws to use instead of
      `normals(images, seed)` (a curve draws them once, from the original
      images, for all of its steps).
    iterations, tolerance: CG's cap and stopping rule (`linear_fill`).

  Returns:
    [B, H, W, C] float32.
  """
  images = jnp.asarray(images, jnp.float32)
  filled, _ = linear_fill(
    images, removed, iterations=iterations, tolerance=tolerance
  )
  if noise_field is None:
    noise_field = normals(images, seed)
  filled = filled + jnp.asarray(noise, jnp.float32) * noise_field
  return jnp.where(removed[..., None], filled, images)
