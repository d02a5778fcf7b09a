"""One jitted function per (model, heatmap): logits, heatmap and RMA of a batch.

    explain = make_explainer(module, targets.zero_shot, Chefer(start_layer=-1))
    out = explain(params, {'class_embeddings': text_embeds}, images, labels, masks)
    out['logits']           # [B, C] float32
    out['classes']          # [B] int32, the explained class (label or prediction)
    out['heatmap']          # [B, S, S] float32 in [0, 1] (upsampled, per-image min-max)
    out['heatmap_patches']  # [B, gh, gw] float32, the raw map before post-processing
    out['rma']              # [B] float32, metrics.rma(heatmap, masks) (only with masks)

How it works. The image tower perturbs and sows its first LayerNorm outputs
(``norm1``) and block outputs (``tokens``), and the attention probabilities
(``attn/probs``) of the blocks named in its ``sow_attention`` field: the
explainer sets that field to exactly the blocks the heatmap reads (Chefer from
``start_layer``, rollout its blocks, none for Grad-CAM and the pixel
heatmaps), so every other block runs fused attention. The tower's last block
computes only the CLS token (`VisionTransformer.cls_only`, the default of a
`VisionLanguageModel`): its attention map is then the CLS query row
[B, heads, 1, N], which is all Chefer and rollout read of the last block;
Grad-CAM on the last block's output tokens turns that off.

Two paths (`heatmaps.base`). The token path (Chefer, Grad-CAM, rollout:
`_token_map`) calls the model once with zero perturbations for exactly the
sites the heatmap reads, collects the sown activations, and takes ``jax.grad``
of the summed per-sample scores with respect to those perturbations: one
forward, one backward, every sample of the batch at once (exact: samples never
interact). Because only the needed sites are differentiated, XLA prunes the
rest of the backward pass: for last-block Chefer the gradient goes back
through the last block only, and no weight gradient is ever formed. The pixel
path (`_pixel_map`) hands the heatmap the gradient with respect to the images
(`_ImageGradient`); input gradients and gradient x input take it once,
integrated gradients runs its own path integral (``lax.scan`` over the path
points, each a batched forward + backward).

Every heatmap is a small frozen dataclass (hashable, so it can sit in configs
and static arguments) in its module of `explain.heatmaps`; ``HEATMAPS[name]``
is its class.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import functools
from typing import Any

import chex
from flax import traverse_util
import jax
import jax.numpy as jnp

from rationality_jax import metrics
from rationality_jax.explain import postprocess
from rationality_jax.explain import targets as targets_lib
from rationality_jax.explain.heatmaps import HEATMAPS
from rationality_jax.explain.heatmaps.base import ATTENTION
from rationality_jax.explain.heatmaps.base import PixelHeatmap
from rationality_jax.explain.heatmaps.base import Site
from rationality_jax.explain.heatmaps.base import TokenHeatmap
from rationality_jax.explain.heatmaps.chefer import Chefer
from rationality_jax.models.vit import VisionTransformer

STUDY_START_LAYER = {"zs": -1, "flcp": -1, "lp": 0, "ft": 0}


def study_method(adaptation: str) -> Chefer:
  """The release's heatmap for an adaptation: Chefer relevance over the last
  block for ZS and FLCP (image-text logit), over all blocks for LP and FT
  (linear-head logit). The paper gives no choice for the other adaptations."""
  if adaptation not in STUDY_START_LAYER:
    raise ValueError(
      f"the study fixes the heatmap only for {sorted(STUDY_START_LAYER)}; "
      f"got {adaptation!r}: pick a method and start_layer explicitly."
    )
  return Chefer(start_layer=STUDY_START_LAYER[adaptation])


# ------------------------------------------------------------------ explainer --


def _vision(module, vision_path: tuple[str, ...] | None):
  """(ViT config, path of the tower in the variable collections)."""
  if isinstance(module, VisionTransformer):
    return module.config, (() if vision_path is None else tuple(vision_path))
  config = getattr(module, "config", None)
  if config is None or not hasattr(config, "vision"):
    raise TypeError(
      f"cannot find the image tower of {type(module).__name__}: expected "
      "a VisionTransformer or a module whose config has `.vision`."
    )
  return config.vision, (
    ("vision",) if vision_path is None else tuple(vision_path)
  )


def make_explainer(
  module,
  classifier: targets_lib.Classifier,
  heatmap: TokenHeatmap | PixelHeatmap | str,
  *,
  target: targets_lib.Target = "label",
  score: targets_lib.Score = targets_lib.class_logit,
  vision_path: tuple[str, ...] | None = None,
  negative: str = "clip",
  constant_map: str = "zero",
  signed: str = "positive",
  jit: bool = True,
) -> Callable[..., dict]:
  """Build ``explain(params, head, images, labels=None, masks=None) -> dict``.

  Args:
    module: a `VisionLanguageModel` (tower at ``vision``) or a bare
      `VisionTransformer` (tower at the root), or any module whose config has
      ``.vision`` and whose tower follows the explain contract. Its
      ``sow_attention`` field, when it has one, is replaced by the blocks the
      heatmap reads.
    classifier: ``classifier(module, images, head) -> logits [B, C]`` run inside
      ``module.apply`` (`targets.zero_shot`, `targets.linear_probe`, ...).
    heatmap: a heatmap dataclass (`Chefer`, `GradCAM`, `Rollout`,
      `InputGradients`, `GradientXInput`, `IntegratedGradients`) or its name
      in `HEATMAPS` (then with its defaults).
    target: ``'label'`` (explain the ground-truth class) or ``'predicted'``.
    score: ``score(logits, classes) -> [B]`` (default the class logit).
    vision_path: where the tower sits in the variable collections (default
      ``('vision',)`` for a VLM, ``()`` for a bare tower).
    negative: RMA's policy for negative heatmap values (the normalized maps
      are >= 0, so it does not matter for them).
    constant_map: what the min-max normalization makes of a constant map:
      ``'zero'`` (ours, default) or ``'nan'`` (the study's release, 0/0); see
      `postprocess.minmax_normalize`.
    signed: what of a signed map (``heatmap.signed``) is relevance before
      min-max: ``'positive'`` (ours, default: its positive part) or
      ``'minmax'`` (the release's, the raw map); `postprocess.SIGNED_MAPS`.
    jit: wrap in ``jax.jit`` (default). Under an outer jit/vmap pass False.

  Returns:
    explain(params, head, images, labels=None, masks=None) with
      params: the module's params; head: the classifier's pytree (may be None);
      images: [B, S, S, 3] float normalized, S = the tower's image_size;
      labels: [B] int (needed for target='label');
      masks: [B, S, S] binary object masks, or None (then no 'rma').
    returning {'logits' [B, C], 'classes' [B], 'heatmap' [B, S, S] in [0, 1],
      'heatmap_patches' [B, gh, gw] (raw, before upsampling/normalizing; for
      pixel heatmaps the per-patch mean of the pixel map), 'rma' [B]}.
  """
  if isinstance(heatmap, str):
    heatmap = HEATMAPS[heatmap]()
  _check_options(target, constant_map, signed)
  tower, path = _vision(module, vision_path)
  sites = heatmap.sites(tower.depth) if heatmap.kind == "tokens" else ()
  model = _Model(_for_sites(module, tower, sites), classifier, target, score)
  if heatmap.kind == "tokens":
    compute = functools.partial(_token_map, model, heatmap, tower, path)
  else:
    compute = functools.partial(_pixel_map, model, heatmap, tower)
  size = (tower.image_size, tower.image_size)

  def explain(params, head, images, labels=None, masks=None) -> dict:
    _check_batch(images, labels, size)
    logits, classes, patches, pixels = compute(params, head, images, labels)
    out = {
      "logits": logits,
      "classes": classes,
      "heatmap": _heatmap(pixels, heatmap, signed, constant_map),
      "heatmap_patches": patches.astype(jnp.float32),
    }
    if masks is not None:
      chex.assert_shape(masks, (images.shape[0], *size))
      out["rma"] = metrics.rma(out["heatmap"], masks, negative=negative)
    return out

  return jax.jit(explain) if jit else explain


def _heatmap(pixels, heatmap, signed: str, constant_map: str) -> jax.Array:
  """[B, S, S] float32 in [0, 1] from a raw pixel map (`postprocess.normalize`:
  a signed heatmap's relevance per `signed`, then per-image min-max)."""
  return postprocess.normalize(
    pixels.astype(jnp.float32),
    signed_map=heatmap.signed,
    signed=signed,
    constant_map=constant_map,
  )


def _check_options(target: str, constant_map: str, signed: str):
  if target not in targets_lib.TARGETS:
    raise ValueError(f"target {target!r} is not one of {targets_lib.TARGETS}.")
  if constant_map not in postprocess.CONSTANT_MAPS:
    raise ValueError(
      f"constant_map {constant_map!r} is not one of {postprocess.CONSTANT_MAPS}."
    )
  postprocess.check_signed(signed)


def _check_batch(images, labels, size: tuple[int, int]):
  chex.assert_rank(images, 4)
  if images.shape[1:] != (*size, 3):
    raise ValueError(
      f"images must be [B, {size[0]}, {size[1]}, 3] for this "
      f"model; got {images.shape}."
    )
  if labels is not None:
    chex.assert_shape(labels, (images.shape[0],))


def _for_sites(module, tower, sites: tuple[Site, ...]):
  """`module` sowing attention in exactly the blocks of `sites`, and computing
  every token of the last block when a site reads its output tokens."""
  if hasattr(module, "sow_attention"):
    module = module.clone(
      sow_attention=tuple(b for b, site in sites if site == ATTENTION)
    )
  if (tower.depth - 1, ("tokens",)) in sites and getattr(
    module, "cls_only", False
  ):
    module = module.clone(cls_only=False)  # the heatmap reads every token
  return module


@dataclasses.dataclass(frozen=True)
class _Model:
  """The model as both paths call it: logits, explained classes, score."""

  module: Any
  classifier: targets_lib.Classifier
  target: targets_lib.Target
  score: targets_lib.Score

  def logits(self, params, head, images, perturbations=None, capture=False):
    """(logits, the sown intermediates if `capture` else {})."""
    variables = {"params": params}
    if perturbations:
      variables["perturbations"] = perturbations
    if not capture:
      return self.module.apply(
        variables, images, head, method=self.classifier
      ), {}
    logits, state = self.module.apply(
      variables, images, head, method=self.classifier, mutable=["intermediates"]
    )
    return logits, state.get("intermediates", {})

  def classes(self, logits, labels):
    return targets_lib.explained_classes(self.target, logits, labels)

  def perturbation_zeros(self, params, head, images) -> dict:
    """Zeros for every perturbed site of this call (flax needs all of them)."""
    _, state = jax.eval_shape(
      functools.partial(
        self.module.apply,
        {"params": params},
        images,
        head,
        method=self.classifier,
        mutable=["perturbations"],
      )
    )
    return traverse_util.flatten_dict(
      jax.tree.map(
        lambda leaf: jnp.zeros(leaf.shape, leaf.dtype), state["perturbations"]
      )
    )


# ------------------------------------------------------------- token path --


def _token_map(
  model: _Model, heatmap, tower, path, params, head, images, labels
):
  """(logits, classes, patch map, pixel map) of a token heatmap: one forward
  that sows the heatmap's sites and, if it needs them, one backward to the
  perturbations of those sites only."""
  full = [
    (*path, f"block_{b}", *site) for b, site in heatmap.sites(tower.depth)
  ]
  zeros = model.perturbation_zeros(params, head, images)
  for p in full:
    if p not in zeros:
      raise KeyError(
        f"the model does not perturb {'/'.join(p)!r}; does its "
        "tower follow the explain contract of "
        "rationality_jax.models.vit?"
      )
  # Only the sites the heatmap reads are differentiated; the other zeros are
  # constants, so XLA prunes every backward path that does not reach them.
  needed = {p: zeros[p] for p in full}

  def total_score(needed):
    perturbations = traverse_util.unflatten_dict({**zeros, **needed})
    logits, inter = model.logits(
      params, head, images, perturbations, capture=True
    )
    classes = model.classes(logits, labels)
    return model.score(logits, classes).sum(), (logits, classes, inter)

  if heatmap.needs_gradients:
    grads, (logits, classes, inter) = jax.grad(total_score, has_aux=True)(
      needed
    )
    gradients = [grads[p] for p in full]
  else:
    _, (logits, classes, inter) = total_score(needed)
    gradients = None
  activations = [_sown_once(inter, p) for p in full]
  patches = heatmap.relevance(activations, gradients).reshape(
    images.shape[0], tower.grid_size, tower.grid_size
  )
  pixels = postprocess.upsample(patches, (tower.image_size, tower.image_size))
  return logits, classes, patches, pixels


def _sown_once(intermediates, path: tuple[str, ...]) -> jax.Array:
  """What the call sowed at `path`: it must have sown it exactly once."""
  sown = intermediates
  for key in path:
    if key not in sown:
      raise KeyError(
        f"the model did not sow/perturb {'/'.join(path)!r} (missing "
        f"{key!r}); does the tower follow the explain contract of "
        "rationality_jax.models.vit?"
      )
    sown = sown[key]
  if len(sown) != 1:
    raise ValueError(
      f"{'/'.join(path)} was sown {len(sown)} times in one call; "
      "the classifier must run the image tower once."
    )
  return sown[0]


# ------------------------------------------------------------- pixel path --


@dataclasses.dataclass(frozen=True)
class _ImageGradient:
  """`base.ImageGradient` of one call: the summed score's gradient with
  respect to the images, for the labels of that call."""

  model: _Model
  params: Any
  head: Any
  labels: jax.Array | None

  def __call__(self, images, classes=None):
    def total_score(x, classes):
      logits, _ = self.model.logits(self.params, self.head, x)
      if classes is None:
        classes = self.model.classes(logits, self.labels)
      return self.model.score(logits, classes).sum(), (logits, classes)

    g, (logits, classes) = jax.grad(total_score, has_aux=True)(images, classes)
    return g, logits, classes

  def forward(self, images):
    logits, _ = self.model.logits(self.params, self.head, images)
    return logits, self.model.classes(logits, self.labels)

  def classes(self, images):
    if self.model.target == "predicted":
      logits, _ = self.model.logits(self.params, self.head, images)
      return self.model.classes(logits, self.labels)
    return self.model.classes(None, self.labels)


def _pixel_map(model: _Model, heatmap, tower, params, head, images, labels):
  """(logits, classes, patch map, pixel map) of a pixel heatmap; the patch map
  is the per-patch mean of the pixel map."""
  gradient = _ImageGradient(model, params, head, labels)
  logits, classes, pixels = heatmap.pixel_map(images, gradient)
  patches = postprocess.patch_pool(pixels, (tower.grid_size, tower.grid_size))
  return logits, classes, patches, pixels
