"""What a method is: a trainable-parameter regex, a loss and a head - nothing else.

The one training loop (`rationality_jax.run.train`) asks a `Method` for:

  trainable(config, model_config) -> regex over the paths of ``{'params': model params,
      'head': head}`` (``params/vision/block_0/attn/query/kernel``,
      ``head/kernel``); see `rationality_jax.run.optim`.
  init_head(HeadInit) -> the head pytree that trains with the model (host side).
  loss: 'cross_entropy' on ``logits(module, images, head, task)`` [B, C], or
      'contrastive' (FLYP): image vs "a photo of a {label}" caption embeddings.
  eval_head(module, params, head, task) -> the head `classifier` takes (host
      side, after training; e.g. FLCP rebuilds its zero-shot head from the
      fine-tuned text tower, CoOp turns its contexts into class embeddings).
  classifier(module, images, eval_head) -> logits [B, C], run inside
      ``module.apply``: the contract of `rationality_jax.explain.targets`, so
      evaluation and explanations reuse it unchanged.

and declares its settings, which the run config takes from here (its
defaults, allowed values and training fingerprint never list them again):

  options       {option: default} of its config section ``config.<section>``
  section       that section's name ('' = the method's name; FT reads LP's)
  choices       {option: allowed values} checked before any work
  study_lr      the learning rate of the study's recipe (the release's LP
                1e-3, FT and FLCP 1e-5; CoOp's and the adapter's are ours)
  reads         other methods' sections it also reads (its objective's:
                guided reads ``flcp``), in its training fingerprint too

A method whose loss is more than its objective (the guided methods: a
relevance penalty computed from the same forward pass) supplies the whole
loss with ``make_loss(method, module, config) -> loss_fn`` (the signature of
`make_loss_fn`'s result), still run by the one training step. A method whose
loss reads the object masks sets ``needs_masks`` (the training batches then
carry ``mask [B, S, S]``) and says whose masks it may read with
``select_masks(config, columns) -> (selected [N] bool, facts)``: columns are
the training split's ``label`` and ``id`` in source order, ``selected``
becomes ``task['mask_selected']`` (indexed by the batch's ``index``) and
``facts`` the checkpoint meta's ``masks`` entry.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from rationality_jax import models
from rationality_jax.methods import losses
from rationality_jax.models.vlm import MAX_LOGIT_SCALE
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import normalize


@dataclasses.dataclass
class HeadInit:
  """What `Method.init_head` may use.

  Attributes:
    module, params: the model (params possibly sharded).
    task: `heads.make_task` output, extended by `Method.extend_task`.
    config: the whole training config (method options live in
      ``config.<method name>`` and ``config.head``).
    rng: a `jax.random` key for random heads.
    zero_shot: () -> ``{'class_embeddings': [C, E]}`` (cached on disk).
    tokenizer: the family's `rationality_jax.models.Tokenizer`.
  """

  module: VisionLanguageModel
  params: Any
  task: dict[str, np.ndarray]
  config: ml_collections.ConfigDict
  rng: jax.Array
  zero_shot: Callable[[], dict[str, np.ndarray]]
  tokenizer: Any


def identity_eval_head(module, params, head, task):
  del module, params, task
  return head


def no_task_extension(config, tokenizer, class_names) -> dict[str, np.ndarray]:
  del config, tokenizer, class_names
  return {}


def every_mask(config, columns) -> tuple[np.ndarray, dict]:
  """`Method.select_masks` default: every training image's mask."""
  del config
  count = len(columns["label"])
  return np.ones((count,), bool), {"masks_per_class": "all", "count": count}


@dataclasses.dataclass(frozen=True)
class Method:
  """One adaptation method as configuration of the training loop (module docstring)."""

  name: str
  trainable: Callable[[ml_collections.ConfigDict, Any], str]
  init_head: Callable[[HeadInit], Any]
  classifier: Callable[[Any, jax.Array, Any], jax.Array]
  loss: str = "cross_entropy"
  logits: Callable[[Any, jax.Array, Any, Any], jax.Array] | None = None
  eval_head: Callable[[VisionLanguageModel, Any, Any, Any], Any] = (
    identity_eval_head
  )
  extend_task: Callable[[ml_collections.ConfigDict, Any, Any], dict] = (
    no_task_extension
  )
  options: dict[str, Any] = dataclasses.field(default_factory=dict, hash=False)
  section: str = ""
  choices: dict[str, tuple] = dataclasses.field(
    default_factory=dict, hash=False
  )
  study_lr: float = 0.0
  reads: tuple[str, ...] = ()
  make_loss: Callable[..., Callable] | None = None
  needs_masks: bool = False
  select_masks: Callable[[ml_collections.ConfigDict, dict], tuple] = every_mask

  @property
  def options_section(self) -> str:
    """The config section holding this method's options ('' if it has none)."""
    return (self.section or self.name) if self.options else ""

  def __post_init__(self):
    unknown = sorted(set(self.choices) - set(self.options))
    if unknown:
      raise ValueError(f"{self.name}: choices for unknown options {unknown}.")
    for option, allowed in self.choices.items():
      if self.options[option] not in allowed:
        raise ValueError(
          f"{self.name}: default {option}={self.options[option]!r} is not "
          f"among its choices {allowed}."
        )
    if self.loss not in ("cross_entropy", "contrastive"):
      raise ValueError(
        f"{self.name}: loss {self.loss!r} is not 'cross_entropy' or 'contrastive'."
      )
    if self.loss == "cross_entropy" and self.logits is None:
      raise ValueError(f"{self.name}: a cross-entropy method needs `logits`.")


def fixed_temperature(config, model_config) -> float:
  """FLCP's fixed temperature; 0.0 when the model's own trains.

  ``config.flcp.temperature`` > 0 fixes it, 0 trains the model's own, -1 (the
  default) takes the family's `Family.flcp_temperature` (CLIP 0.07; ALBEF,
  BLIP 0: learnable).
  """
  if config.flcp.temperature < 0:
    return models.family(model_config).flcp_temperature
  return float(config.flcp.temperature)


def contrastive_multiplier(mdl, config, temperature: float) -> jax.Array:
  """Inside apply: FLCP's logit multiplier, fixed (1 / `temperature`) or the
  model's own with FLCP's training caps (CLIP exp(logit_scale) <= 100 as
  CLIP trains; ALBEF/BLIP temp clipped to ``flcp.temp_range``)."""
  if temperature:
    return jnp.float32(1.0 / temperature)
  return mdl.logit_multiplier(
    temp_range=tuple(config.flcp.temp_range), max_scale=MAX_LOGIT_SCALE
  )


def make_loss_fn(
  method: Method, module: VisionLanguageModel, config: ml_collections.ConfigDict
):
  """``loss_fn(trainable, batch, task) -> (loss, {'accuracy'})`` for `jax.value_and_grad`.

  trainable: ``{'params', 'head'}``; batch: ``image [B, S, S, 3]``, ``label
  [B]`` (and optionally ``valid [B]``); task: `heads.make_task` arrays.
  A method's own ``make_loss`` replaces this one.
  """
  if method.make_loss is not None:
    return method.make_loss(method, module, config)

  temperature = fixed_temperature(config, module.config)

  def forward(mdl, head, batch, task):
    images, labels = batch["image"], batch["label"]
    weights = batch.get("valid")
    if method.loss == "contrastive":
      image = normalize(mdl.encode_image(images))
      text = normalize(
        mdl.encode_text(
          task["caption_ids"][labels], task["caption_mask"][labels]
        )
      )
      logits = contrastive_multiplier(mdl, config, temperature) * image @ text.T
      targets = labels if config.flcp.targets == "same_label" else None
      loss = losses.contrastive(logits, targets)
      accuracy = (jnp.argmax(logits, -1) == jnp.arange(labels.shape[0])).mean()
    else:
      logits = method.logits(mdl, images, head, task)
      loss = losses.cross_entropy(logits, labels, weights)
      accuracy = (jnp.argmax(logits, -1) == labels).mean()
    return loss, {"accuracy": accuracy}

  def loss_fn(trainable, batch, task):
    return module.apply(
      {"params": trainable["params"]},
      trainable["head"],
      batch,
      task,
      method=forward,
    )

  return loss_fn
