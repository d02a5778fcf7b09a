"""Deletion and insertion curves: does the heatmap rank the pixels the model uses?

Petsiuk, Das, Saenko, "RISE: Randomized Input Sampling for Explanation of
Black-box Models" (BMVC 2018), section 4.1:

* **deletion**: starting from the image, replace the most relevant pixels
  first by a baseline, a share ``k / K`` of the pixels at step k = 0..K, and
  record the explained class's probability after each step. A heatmap that
  finds the evidence makes it drop fast: a **low** area under the curve.
* **insertion**: starting from the baseline (RISE: a blurred copy of the
  image), put the image's most relevant pixels back first. A **high** area
  is good.

The area is the trapezoid rule over the K + 1 points spaced evenly on [0, 1]
(RISE's ``auc``: ``(sum - first / 2 - last / 2) / K``). The score is, by
default, the softmax probability of the explained class (`targets.
class_probability`, RISE's), over the classifier's classes; pass
``score=targets.class_logit`` for the score the explainer explains (then the
area is not bounded to [0, 1]). Pass the classes the explainer explained
(``out['classes']``), so that both curves follow the class whose map ranks the
pixels.

Every step is one batched forward pass of the classifier on the perturbed
images (``lax.scan`` over the K + 1 steps: the memory of one batch whatever
K); the pixel order is one sort per image. So a curve costs K + 1 forwards,
no backward.

Order and ties. Pixels are ranked by decreasing heatmap value; pixels of
equal value (a flat region of a map, or a constant map) are taken in a fixed
pseudo-random order drawn from ``seed`` (the same for every image), not in
raster order, which would remove the top rows first. The number of pixels
changed at step k is ``floor(k * H * W / K)``. All colour channels of a
pixel change together.

Baselines (in the model's input space, the normalized images, like
`IntegratedGradients`'): a number or one value per channel (``0.0`` is the
dataset-mean colour; a black image is `explain.black_baseline(mean, std)`), or
``'blur'``: RISE's insertion canvas, the image convolved with RISE's 11 x 11
kernel ``gkern(11, 5)`` (a delta smoothed by a Gaussian of sigma 5, `rise_taps`)
with zero padding (RISE's ``conv2d(..., padding=5)``, so the border darkens
towards 0, the mean colour). RISE uses zeros for
deletion and the blur for insertion; those are the defaults here.

ROAD (Rong et al., "A Consistent and Efficient Evaluation Strategy for
Attribution Methods", ICML 2022), ``baseline='road'``: the removed pixels are
filled by noisy linear imputation from the kept ones (`imputation.impute`:
each removed pixel the weighted mean of its 8 neighbours, plus
``noise * N(0, 1)``), so the fill does not mark where the removed pixels are.
Deletion at step k removes the ``k / K`` most relevant pixels (ROAD's MoRF
curve); insertion at step k keeps them and imputes all the others, so
insertion at share f is ROAD's LeRF image at ``1 - f`` (its least relevant
pixels removed first). Both ends impute the whole image: with no kept pixel
the fill is 0 (the dataset-mean colour) plus the noise. Each step solves a
sparse system per image (conjugate gradients, on the device), so a ROAD
curve costs K + 1 imputations besides its forwards. The noise is drawn once
per curve from each original image's bits and ``seed``, the same at every
step. `FILLS` names the two fills a driver chooses between.

Degenerate cases: a sample whose heatmap holds a NaN or an inf has no order:
its scores and area are NaN. Non-finite images or logits propagate as NaN
through the scores.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import scipy.ndimage

from rationality_jax.explain import imputation
from rationality_jax.explain import targets as targets_lib

MODES = ("deletion", "insertion")
DEFAULT_BASELINES = {"deletion": 0.0, "insertion": "blur"}
# A driver's fills (``evaluate.faithfulness_fill``), with the name a report
# gives them: RISE's baselines (zeros for deletion, the blur for insertion)
# or ROAD's imputation for both.
FILLS = {
  "rise": "RISE (zeros / blur)",
  "road": "ROAD (noisy linear imputation)",
}
BLUR_SIZE = 11
BLUR_SIGMA = 5.0


def pixel_ranks(heatmaps: jax.Array, seed: int = 0) -> jax.Array:
  """Each pixel's place in the order of relevance: [B, H, W] -> [B, H * W].

  Rank 0 is the most relevant pixel (highest value); equal values are taken
  in a fixed pseudo-random order drawn from `seed`, the same for every image.
  Row-major pixel index. The ranks of a map with a NaN or an inf are
  arbitrary (`perturbation_curve` sets that sample's scores to NaN).
  """
  chex.assert_rank(heatmaps, 3)
  batch = heatmaps.shape[0]
  pixels = heatmaps.shape[1] * heatmaps.shape[2]
  values = heatmaps.reshape(batch, pixels).astype(jnp.float32)
  values = jnp.where(values == 0, 0.0, values)  # -0.0 ties with 0.0
  tiebreak = jax.random.permutation(jax.random.key(seed), pixels)
  tiebreak = jnp.broadcast_to(tiebreak.astype(jnp.int32), values.shape)
  index = jnp.broadcast_to(jnp.arange(pixels, dtype=jnp.int32), values.shape)
  _, _, order = jax.lax.sort((-values, tiebreak, index), num_keys=2)
  rows = jnp.arange(batch)[:, None]
  return jnp.zeros_like(index).at[rows, order].set(index)


def step_sizes(steps: int, pixels: int) -> np.ndarray:
  """[steps + 1] int32 pixels changed at each step: floor(k * pixels / steps)."""
  if steps < 1:
    raise ValueError(f"a curve needs steps >= 1; got {steps}.")
  return (np.arange(steps + 1, dtype=np.int64) * pixels // steps).astype(
    np.int32
  )


def curve_auc(scores: jax.Array) -> jax.Array:
  """Trapezoid area of [..., K + 1] scores on [0, 1]: [...] (RISE's auc)."""
  steps = scores.shape[-1] - 1
  if steps < 1:
    raise ValueError("an area needs at least two points on the curve.")
  inner = scores.sum(axis=-1) - (scores[..., 0] + scores[..., -1]) / 2
  return inner / steps


def rise_taps() -> np.ndarray:
  """[BLUR_SIZE] float64: one axis of RISE's blur kernel, ``gkern(11, 5)``:
  a delta at the centre of an 11 x 11 grid smoothed by
  ``scipy.ndimage.gaussian_filter(delta, 5)`` (reflecting borders, so the
  taps are not a sampled Gaussian); the 2-D kernel is their outer product."""
  delta = np.zeros(BLUR_SIZE)
  delta[BLUR_SIZE // 2] = 1.0
  return scipy.ndimage.gaussian_filter1d(delta, BLUR_SIGMA)


@functools.lru_cache(maxsize=16)
def _blur_matrix(size: int) -> np.ndarray:
  """[size, size] float32: `rise_taps` with zero padding as a matrix:
  blurred = M @ x along one axis (RISE's ``conv2d(..., padding=5)``)."""
  radius = BLUR_SIZE // 2
  matrix = np.zeros((size, size), np.float64)
  for offset, weight in zip(range(-radius, radius + 1), rise_taps()):
    matrix += weight * np.eye(size, k=offset)
  return matrix.astype(np.float32)


def blur(images: jax.Array) -> jax.Array:
  """RISE's insertion canvas: [B, H, W, C] -> [B, H, W, C], each channel
  convolved with RISE's 11 x 11 kernel (`rise_taps`), zero padding."""
  rows = jnp.asarray(_blur_matrix(images.shape[1]))
  cols = jnp.asarray(_blur_matrix(images.shape[2]))
  return jnp.einsum(
    "ih,bhwc,jw->bijc",
    rows,
    images.astype(jnp.float32),
    cols,
    precision=jax.lax.Precision.HIGHEST,
  ).astype(images.dtype)


def fill_baseline(fill: str, mode: str) -> float | str:
  """The `make_perturbation_curve` baseline of `mode` under a driver's fill
  (`FILLS`): RISE's default for 'rise', ``'road'`` for 'road'."""
  if fill not in FILLS:
    raise ValueError(f"fill {fill!r} is not one of {tuple(FILLS)}.")
  return DEFAULT_BASELINES[mode] if fill == "rise" else "road"


def _canvas(images, baseline) -> jax.Array:
  """RISE's canvas: the blur, or a number or one per channel everywhere."""
  if isinstance(baseline, str):
    return blur(images)
  return jnp.broadcast_to(jnp.asarray(baseline, images.dtype), images.shape)


def make_perturbation_curve(
  module,
  classifier: targets_lib.Classifier,
  *,
  mode: str = "deletion",
  steps: int = 16,
  baseline: float | Sequence[float] | str | None = None,
  score: targets_lib.Score = targets_lib.class_probability,
  seed: int = 0,
  noise: float = imputation.NOISE,
  jit: bool = True,
) -> Callable[..., dict]:
  """Build ``curve(params, head, images, heatmaps, classes) -> dict``.

  Args:
    module: the model (as for `make_explainer`: a `VisionLanguageModel`, a
      bare `VisionTransformer`, ...), applied as ``module.apply({'params':
      params}, images, head, method=classifier)``.
    classifier: ``classifier(module, images, head) -> logits [B, C]``
      (`targets.zero_shot`, `targets.linear_probe`, ...).
    mode: ``'deletion'`` or ``'insertion'`` (module docstring).
    steps: K; the curve has K + 1 points (K + 1 forward passes).
    baseline: what replaces (deletion) or starts (insertion) the image: a
      number or one per channel in the normalized input space, ``'blur'``,
      or ``'road'`` (ROAD's noisy linear imputation of the removed pixels at
      every step, module docstring). Default RISE's: 0.0 for deletion,
      ``'blur'`` for insertion.
    score: ``score(logits, classes) -> [B]``; default the class probability.
    seed: the tie-breaking order of equal heatmap values (`pixel_ranks`),
      and ROAD's noise (folded with each image's bits).
    noise: ROAD's noise standard deviation (its 0.01); only with 'road'.
    jit: wrap in ``jax.jit`` (default); pass False under an outer jit.

  Returns:
    curve(params, head, images [B, H, W, C], heatmaps [B, H, W] (any scale:
    only the order matters), classes [B] int) -> {'scores': [B, K + 1]
    float32, the score after step k; 'auc': [B] float32, `curve_auc` of
    them}. NaN for a sample whose heatmap is not finite.
  """
  if mode not in MODES:
    raise ValueError(f"mode {mode!r} is not one of {MODES}.")
  baseline = DEFAULT_BASELINES[mode] if baseline is None else baseline
  if isinstance(baseline, str) and baseline not in ("blur", "road"):
    raise ValueError(
      f"baseline {baseline!r} is not 'blur', 'road', a number or one per "
      "channel."
    )
  step_sizes(steps, 1)  # validates steps

  def logits_of(params, head, images):
    return module.apply({"params": params}, images, head, method=classifier)

  def curve(params, head, images, heatmaps, classes) -> dict:
    chex.assert_rank(images, 4)
    chex.assert_shape(heatmaps, images.shape[:3])
    chex.assert_shape(classes, images.shape[:1])
    batch, height, width = heatmaps.shape
    ranks = pixel_ranks(heatmaps, seed).reshape(batch, height, width, 1)
    if isinstance(baseline, str) and baseline == "road":
      perturb = _road(images, ranks[..., 0], mode, seed, noise)
    else:
      canvas = _canvas(images, baseline)
      start, end = (images, canvas) if mode == "deletion" else (canvas, images)

      def perturb(changed):
        return jnp.where(ranks < changed, end, start)

    def step(_, changed):
      logits = logits_of(params, head, perturb(changed))
      return None, score(logits, classes).astype(jnp.float32)

    sizes = jnp.asarray(step_sizes(steps, height * width))
    _, scores = jax.lax.scan(step, None, sizes)
    scores = scores.T
    finite = jnp.isfinite(heatmaps).reshape(batch, -1).all(axis=1)
    scores = jnp.where(finite[:, None], scores, jnp.nan)
    return {"scores": scores, "auc": curve_auc(scores)}

  return jax.jit(curve) if jit else curve


def _road(images, ranks, mode, seed, noise) -> Callable:
  """``perturb(changed) -> [B, H, W, C]``: ROAD's image after `changed`
  pixels (most relevant first) are removed (deletion) or kept (insertion)."""
  field = imputation.normals(images, seed)

  def perturb(changed):
    top = ranks < changed
    removed = top if mode == "deletion" else ~top
    return imputation.impute(
      images, removed, noise=noise, noise_field=field
    ).astype(images.dtype)

  return perturb
