"""Right for the right reasons: training losses on the explanation itself.

Two penalties on where the evidence of a prediction lies, each added to a
task loss and computed from the same forward pass:

* **guided** (Chefer, Schwartz & Wolf, "Optimizing Relevance Maps of Vision
  Transformers Improves Robustness", NeurIPS 2022, RobustViT): R is the
  explanation the evaluation scores - Chefer's gradient-weighted relevance of
  the ground-truth class (`explain.Chefer`), upsampled and min-max normalized
  per image (`explain.make_explainer`'s ``heatmap``) - and M the object mask:

      loss = lambda_acc * task + lambda_seg * (background * MSE(R (1 - M), 0)
                                               + foreground * MSE(R M, M))

  R holds a gradient (dS/dA), so the loss's gradient is a second-order one:
  `jax.value_and_grad` of the training step differentiates through the
  explainer's own `jax.grad` (double backward through the relevance).
  RobustViT's weights are the defaults (lambda_seg 0.8, lambda_acc 0.2,
  background 2, foreground 0.3); its task loss is the CE of the original
  model's top-1, ours the method's objective with the labels.
* **rrr** (Ross, Hughes & Doshi-Velez, "Right for the Right Reasons", IJCAI
  2017): the input gradient of the summed log-probabilities must vanish
  outside the object,

      loss = task + lambda_rrr * sum_{pixels, channels} ((1 - M) d sum_k log p_k / dx)^2

Few masks (``masks_per_class``): the penalty reads the masks of k training
images per class only (a seeded choice, `select`; -1 every image, 0 none =
plain fine-tuning), averaged over the batch's images that have one; the
others contribute the task loss alone. A batch holding no such image skips
the penalty's computation (`lax.cond`: one branch runs).
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
import hashlib

import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax import explain
from rationality_jax.methods import base
from rationality_jax.methods import losses
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import normalize

# The masks' own random stream (`select`), apart from the run's others.
MASK_STREAM = 0x6D61736B
# A relevance map this flat (relative spread) trains as all zeros.
FLAT = 1e-4
# Selected images listed by id in the checkpoint meta up to this many.
MAX_LISTED_IDS = 20000


# ------------------------------------------------------------- few masks ----


def select(
  labels: np.ndarray, ids: np.ndarray, masks_per_class: int, seed: int
) -> tuple[np.ndarray, dict]:
  """Which training images' masks the penalty may read.

  Args:
    labels: [N] int, the training split's labels in source order.
    ids: [N] the examples' ids (recorded).
    masks_per_class: k >= 1: k images per class (all of a class with fewer),
      drawn without replacement, class by class in label order, from
      ``np.random.default_rng([seed, MASK_STREAM])``; -1 every image; 0 none.
    seed: the choice's seed.

  Returns:
    (selected [N] bool, facts): facts names k, the seed, the count, the
    SHA-256 of the selected source indices and (up to `MAX_LISTED_IDS`) the
    selected ids, for the run's checkpoint meta.
  """
  labels = np.asarray(labels).reshape(-1)
  selected = np.zeros(labels.shape, bool)
  if masks_per_class < 0:
    selected[:] = True
  elif masks_per_class > 0:
    rng = np.random.default_rng([seed, MASK_STREAM])
    for label in np.unique(labels):
      members = np.flatnonzero(labels == label)
      count = min(masks_per_class, len(members))
      selected[rng.choice(members, count, replace=False)] = True
  indices = np.flatnonzero(selected)
  facts = {
    "masks_per_class": "all" if masks_per_class < 0 else int(masks_per_class),
    "seed": int(seed),
    "count": len(indices),
    "of": len(labels),
    "indices_sha256": hashlib.sha256(
      indices.astype(np.int64).tobytes()
    ).hexdigest(),
  }
  if masks_per_class > 0 and len(indices) <= MAX_LISTED_IDS:
    facts["ids"] = [str(i) for i in np.asarray(ids)[indices]]
  return selected, facts


def selector(section: str) -> Callable:
  """`Method.select_masks` of a method whose options sit in `section`
  (``masks_per_class``; ``mask_seed``, -1 = the run's ``seed``)."""

  def select_masks(config, columns):
    options = config[section]
    seed = config.seed if options.mask_seed < 0 else options.mask_seed
    return select(
      columns["label"], columns["id"], int(options.masks_per_class), seed
    )

  return select_masks


def mask_weights(batch, task) -> jax.Array:
  """[B] float32: 1 for the batch's images whose mask the penalty reads."""
  weights = task["mask_selected"][batch["index"]].astype(jnp.float32)
  if "valid" in batch:
    weights = weights * batch["valid"].astype(jnp.float32)
  return weights


def weighted_mean(values: jax.Array, weights: jax.Array) -> jax.Array:
  """sum(w v) / max(sum(w), 1): the mean over the weighted samples (0 if none)."""
  return (values * weights).sum() / jnp.maximum(weights.sum(), 1.0)


# ----------------------------------------------------------- penalties ----


def training_heatmap(patches: jax.Array, size: tuple[int, int]) -> jax.Array:
  """The evaluation's heatmap (`explain`'s upsampling, then per-image
  min-max) of [B, gh, gw] raw patch maps, safe to differentiate: a map
  whose spread is below `FLAT` of its magnitude (rounding noise: its
  normalized values would be noise) becomes zeros with a zero gradient,
  where the evaluation's min-max divides by that tiny spread and its
  gradient overflows."""
  pixels = explain.upsample(patches.astype(jnp.float32), size)
  low = pixels.min(axis=(-2, -1), keepdims=True)
  high = pixels.max(axis=(-2, -1), keepdims=True)
  spread = high - low
  wide = spread > FLAT * jnp.maximum(jnp.abs(low), jnp.abs(high))
  safe = jnp.where(wide, spread, 1.0)
  return jnp.where(wide, (pixels - low) / safe, 0.0)


def relevance_terms(
  heatmap: jax.Array, masks: jax.Array, background: float, foreground: float
) -> jax.Array:
  """RobustViT's per-image relevance loss.

  Args:
    heatmap: [B, S, S] relevance in [0, 1] (min-max normalized).
    masks: [B, S, S] binary object masks.
    background, foreground: the weights of the two terms.

  Returns:
    [B] float32: ``background * mean((R (1 - M))^2) + foreground *
    mean((R M - M)^2)``, means over the pixels.
  """
  r = heatmap.astype(jnp.float32)
  m = masks.astype(jnp.float32)
  outside = jnp.mean(jnp.square(r * (1.0 - m)), axis=(-2, -1))
  inside = jnp.mean(jnp.square(r * m - m), axis=(-2, -1))
  return background * outside + foreground * inside


def input_gradient_terms(gradients: jax.Array, masks: jax.Array) -> jax.Array:
  """Ross et al.'s per-image penalty: [B, S, S, 3] dlogp/dx, [B, S, S] masks
  -> [B] sum over pixels and channels of ((1 - M) dlogp/dx)^2."""
  outside = 1.0 - masks.astype(jnp.float32)[..., None]
  return jnp.sum(
    jnp.square(outside * gradients.astype(jnp.float32)), axis=(1, 2, 3)
  )


# ------------------------------------------------------------- objectives --


def caption_classifier(module, images: jax.Array, head: dict) -> jax.Array:
  """Inside apply: [B, B'] ``scale * cos(image i, caption j)`` against the
  batch's captions (``head['captions']`` [B', E], unit norm): the contrastive
  objective's logits as the explainer takes a classifier; the ground-truth
  class of image i is column i."""
  image = normalize(module.encode_image(images))
  return head["scale"] * image @ head["captions"].T


def batch_captions(mdl, task, labels, config, temperature):
  """Inside apply: (unit caption embeddings [B, E] of the batch's labels,
  FLCP's multiplier, the model's own multiplier without gradient - the
  evaluation's zero-shot scale, which the explained score uses)."""
  text = normalize(
    mdl.encode_text(task["caption_ids"][labels], task["caption_mask"][labels])
  )
  return (
    text,
    base.contrastive_multiplier(mdl, config, temperature),
    jax.lax.stop_gradient(mdl.logit_multiplier()),
  )


def contrastive_task(config, logits, labels):
  """(FLCP's loss, image->caption top-1) of [B, B] logits."""
  targets = labels if config.flcp.targets == "same_label" else None
  accuracy = (jnp.argmax(logits, -1) == jnp.arange(labels.shape[0])).mean()
  return losses.contrastive(logits, targets), accuracy


@dataclasses.dataclass(frozen=True)
class Objective:
  """The task side of a guided loss: the contrastive (FLCP) objective or the
  classification (FT) one, as `explain.make_explainer` takes a classifier."""

  method: base.Method
  module: VisionLanguageModel
  config: object

  @property
  def contrastive(self) -> bool:
    return self.method.loss == "contrastive"

  @property
  def classifier(self):
    return caption_classifier if self.contrastive else self.method.classifier

  def head(self, params, head, batch, task):
    """(the classifier's head, the explained classes, logit rescale)."""
    if not self.contrastive:
      return head, batch["label"], jnp.float32(1.0)
    text, multiplier, scale = self.module.apply(
      {"params": params},
      task,
      batch["label"],
      self.config,
      base.fixed_temperature(self.config, self.module.config),
      method=batch_captions,
    )
    classes = jnp.arange(batch["label"].shape[0])
    return {"captions": text, "scale": scale}, classes, multiplier / scale

  def loss(self, logits, batch):
    """(task loss, training accuracy) of the classifier's logits."""
    labels = batch["label"]
    if self.contrastive:
      return contrastive_task(self.config, logits, labels)
    loss = losses.cross_entropy(logits, labels, batch.get("valid"))
    return loss, (jnp.argmax(logits, -1) == labels).mean()


def with_masks(penalised, plain, masks_per_class: int):
  """The loss: `penalised` when the batch holds a selected image (every batch
  with k = -1), else `plain` (one `lax.cond` branch runs); k = 0: `plain`."""
  if masks_per_class == 0:
    return plain
  if masks_per_class < 0:
    return penalised

  def loss_fn(trainable, batch, task):
    any_mask = mask_weights(batch, task).sum() > 0
    return jax.lax.cond(any_mask, penalised, plain, trainable, batch, task)

  return loss_fn


def plain_loss(method, module, config, scale: float, keys: tuple[str, ...]):
  """The objective alone, times `scale`, with the penalty's metrics at 0."""
  objective = base.make_loss_fn(
    dataclasses.replace(method, make_loss=None), module, config
  )

  def loss_fn(trainable, batch, task):
    loss, aux = objective(trainable, batch, task)
    zero = jnp.zeros((), jnp.float32)
    return scale * loss, {**aux, "task_loss": loss, **dict.fromkeys(keys, zero)}

  return loss_fn


def make_guided_loss(method, module, config):
  """`Method.make_loss` of guided / guided_ft (module docstring)."""
  g = config.guided
  objective = Objective(method, module, config)
  explainer = explain.make_explainer(
    module,
    objective.classifier,
    explain.Chefer(start_layer=int(g.start_layer)),
    jit=False,
  )

  def penalised(trainable, batch, task):
    params = trainable["params"]
    head, classes, rescale = objective.head(
      params, trainable["head"], batch, task
    )
    out = explainer(params, head, batch["image"], classes)
    task_loss, accuracy = objective.loss(out["logits"] * rescale, batch)
    relevance = weighted_mean(
      relevance_terms(
        training_heatmap(out["heatmap_patches"], batch["mask"].shape[-2:]),
        batch["mask"],
        g.background,
        g.foreground,
      ),
      mask_weights(batch, task),
    )
    loss = g.lambda_acc * task_loss + g.lambda_seg * relevance
    aux = {"accuracy": accuracy, "task_loss": task_loss, "relevance": relevance}
    return loss, aux

  plain = plain_loss(method, module, config, g.lambda_acc, ("relevance",))
  return with_masks(penalised, plain, int(g.masks_per_class))


def make_rrr_loss(method, module, config):
  """`Method.make_loss` of rrr (the contrastive objective; module docstring)."""
  r = config.rrr
  objective = Objective(method, module, config)

  def penalised(trainable, batch, task):
    params = trainable["params"]
    head, _, rescale = objective.head(params, trainable["head"], batch, task)

    def log_probabilities(images):
      logits = rescale * module.apply(
        {"params": params}, images, head, method=objective.classifier
      )
      return jax.nn.log_softmax(logits).sum(), logits

    gradients, logits = jax.grad(log_probabilities, has_aux=True)(
      batch["image"]
    )
    task_loss, accuracy = objective.loss(logits, batch)
    penalty = weighted_mean(
      input_gradient_terms(gradients, batch["mask"]), mask_weights(batch, task)
    )
    loss = task_loss + r.lambda_rrr * penalty
    return loss, {"accuracy": accuracy, "task_loss": task_loss, "rrr": penalty}

  plain = plain_loss(method, module, config, 1.0, ("rrr",))
  return with_masks(penalised, plain, int(r.masks_per_class))
