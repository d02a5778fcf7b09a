r"""Contrastive pretraining from scratch: the demo's small CLIP-architecture model.

    pretrain.ensure(config.pretrain, out_dir, workdir)   # then models.load(out_dir)

A `VisionLanguageModel` of the CLIP family (ViT image tower, causal text
transformer with OpenAI's BPE tokenizer, projections, logit scale), randomly
initialised and trained with CLIP's symmetric contrastive loss on the
synthetic benchmark's images and captions. Captions name the object and the
background ("a photo of a circle on a checkerboard background",
``captions='class_background'``) or only the object ("a photo of a circle",
``captions='class'``, the demo's); the pretraining split draws backgrounds independently of
the class (no shortcut), unlike the fine-tuning split. With few distinct
captions, each step embeds every caption once and contrasts each image with
all of them (`contrastive_loss`).

The result is saved with `rationality_jax.models.save` and read back with
`models.load`, like any converted checkpoint.
"""

from __future__ import annotations

import copy
import os

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from rationality_jax import console
from rationality_jax import data
from rationality_jax import models
from rationality_jax.data import pipeline
from rationality_jax.data import sources
from rationality_jax.models.families import clip as clip_family


def captions(kind: str, class_names, background_names) -> list[str]:
  """The distinct captions; image (class k, background t) has caption `caption_id`.

  kind: 'class' ("a photo of a {class}", the benchmark's caption) or
    'class_background' ("a photo of a {class} on a {background} background").
  """
  if kind == "class":
    return [f"a photo of a {c}" for c in class_names]
  if kind == "class_background":
    return [
      f"a photo of a {c} on a {b} background"
      for c in class_names
      for b in background_names
    ]
  raise ValueError(f"captions={kind!r}; choose 'class' or 'class_background'.")


def caption_id(kind: str, labels, backgrounds, num_backgrounds: int):
  """[B] index into `captions(kind, ...)`."""
  return (
    labels * num_backgrounds + backgrounds
    if kind == "class_background"
    else labels
  )


def contrastive_loss(logits: jax.Array, caption_ids: jax.Array) -> jax.Array:
  """CLIP's symmetric cross-entropy over the distinct captions.

  logits: [B, K] image x caption (all K distinct captions); caption_ids: [B]
  int, each image's caption. Image -> text: cross-entropy over the K captions.
  Text -> image: for each caption present in the batch, cross-entropy over the
  B images with the targets spread evenly over the images it describes.
  Returns a scalar.
  """
  num_captions = logits.shape[1]
  positives = jax.nn.one_hot(caption_ids, num_captions)  # [B, K]
  image_to_text = optax.softmax_cross_entropy_with_integer_labels(
    logits, caption_ids
  )
  present = positives.sum(0)  # [K]
  targets = positives.T / jnp.maximum(present, 1)[:, None]  # [K, B]
  text_to_image = optax.softmax_cross_entropy(logits.T, targets)  # [K]
  text_to_image = jnp.sum(text_to_image * (present > 0)) / jnp.sum(present > 0)
  return 0.5 * (image_to_text.mean() + text_to_image)


def _make_step(config, module, token_ids):
  """(AdamW with warmup + cosine, the jitted contrastive step) of `config`."""
  warmup = min(config.warmup_steps, config.steps // 2)
  schedule = optax.warmup_cosine_decay_schedule(
    0.0, config.learning_rate, warmup, config.steps
  )
  tx = optax.adamw(schedule, weight_decay=config.weight_decay)

  @jax.jit
  def train_step(params, opt_state, images, caption_ids):
    def loss_fn(params):
      variables = {"params": params}
      image_embeds = models.normalize(
        module.apply(variables, images, method=module.encode_image)
      )
      text_embeds = models.normalize(
        module.apply(variables, token_ids, method=module.encode_text)
      )
      scale = module.apply(variables, method=module.logit_multiplier)
      logits = scale * image_embeds @ text_embeds.T
      return contrastive_loss(logits, caption_ids), logits

    (loss, logits), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    accuracy = jnp.mean(jnp.argmax(logits, -1) == caption_ids)
    return params, opt_state, loss, accuracy

  return tx, train_step


def pretrain(config: ml_collections.ConfigDict, out_dir: str):
  """Pretrains per `config` and saves to `out_dir`; returns (module, params).

  config: data_dir, dataset (builder kwargs), model (sizes), batch_size,
    steps, learning_rate, warmup_steps, weight_decay, seed, preprocess.
  """
  source = sources.get_source(
    "synthetic_rationality", "train", config.data_dir, **config.dataset
  )
  background_names = source.info.features["background"].names
  texts = captions(config.captions, source.class_names, background_names)
  token_ids, _ = models.tokenizer("clip", config.model.context_length)(texts)
  token_ids = jnp.asarray(token_ids)
  module = models.VisionLanguageModel(clip_family.vlm_config(**config.model))
  size = config.model.image_size
  params = module.init(
    jax.random.key(config.seed), jnp.zeros((1, size, size, 3)), token_ids[:1]
  )["params"]
  tx, train_step = _make_step(config, module, token_ids)
  opt_state = tx.init(params)
  it = pipeline.make_iterator(
    source,
    config.preprocess,
    config.batch_size,
    mesh=None,
    seed=config.seed,
    shuffle=True,
    num_threads=2,
  )
  with console.progress(config.steps, "pretrain", "step") as bar:
    for step in range(1, config.steps + 1):
      batch = next(it)
      caption_ids = jnp.asarray(
        caption_id(
          config.captions,
          batch["label"],
          batch["background"],
          len(background_names),
        )
      )
      params, opt_state, loss, accuracy = train_step(
        params, opt_state, jnp.asarray(batch["image"]), caption_ids
      )
      bar.update(1)
      if step % config.log_every == 0 or step == config.steps:
        loss, accuracy = float(loss), float(accuracy)
        if not np.isfinite(loss):
          raise FloatingPointError(
            f"pretraining loss is {loss} at step {step}."
          )
        bar.set_postfix_str(f"loss {loss:.3f}, image->text acc {accuracy:.2f}")
        logging.info(
          "pretrain step %d/%d: loss %.4f, image->text accuracy %.3f",
          step,
          config.steps,
          loss,
          accuracy,
        )
  params = zero_unused_tokens(params, token_ids)
  os.makedirs(os.path.dirname(os.path.abspath(out_dir)), exist_ok=True)
  models.save(out_dir, module, params)
  return module, params


def zero_unused_tokens(params: dict, token_ids) -> dict:
  """Zeroes the token-embedding rows of tokens that never occur in `token_ids`.

  Those rows never received a gradient (only weight decay): they are random
  initial values. Zeroing them changes no output for the captions and class
  prompts the model was trained on, and lets the saved checkpoint compress
  to a few hundred kB (the 49,408-row embedding is most of the parameters).
  """
  used = np.unique(np.asarray(token_ids))
  table = np.asarray(params["text"]["token_embedding"]["embedding"])
  keep = np.zeros(table.shape[0], bool)
  keep[used] = True
  params = jax.tree.map(lambda x: x, params)
  params["text"] = dict(params["text"])
  params["text"]["token_embedding"] = {
    "embedding": jnp.asarray(np.where(keep[:, None], table, 0))
  }
  return params


def ensure(config: ml_collections.ConfigDict, out_dir: str, workdir: str):
  """Pretrains into `out_dir` unless a model is there; returns its path.

  The data go to ``config.data_dir`` ('' = <workdir>/data).
  """
  if os.path.exists(os.path.join(out_dir, models.checkpoint.OWN_CONFIG)):
    return out_dir
  config = copy.deepcopy(config)
  with config.unlocked():
    config.data_dir = config.data_dir or os.path.join(workdir, "data")
  console.stage(
    f"pretrain the demo model ({config.steps} steps) into {out_dir}"
  )
  data.build("synthetic_rationality", config.data_dir, **config.dataset)
  pretrain(config, out_dir)
  return out_dir
