"""CoOp prompt tuning (Zhou et al. 2022): learned context vectors, only they train.

Each class prompt is ``[start] ctx_1 .. ctx_n {class name}. [end]``: the n
context vectors replace the token embeddings after the start/[CLS] token and
run through the frozen text tower (`heads.encode_with_context`); the image
side is the frozen zero-shot path. Options (``config.coop``):
  * ``init``: '' -> n = ``n_ctx`` vectors ~ N(0, 0.02^2) (CoOp's random init);
    a phrase (e.g. "a photo of a") -> its token embeddings, n = its length.
  * ``class_specific``: False -> one context [n, D] shared by all classes;
    True -> [C, n, D] (CoOp's CSC).
Head ``{'context': [n, D] or [C, n, D]}``; after training `eval_head` turns it
into ``{'class_embeddings': [C, E]}`` and the classifier is the zero-shot one.
"""

import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax.explain import targets
from rationality_jax.methods import heads
from rationality_jax.methods.base import Method

PLACEHOLDER = "X"


def context_length(config, tokenizer) -> int:
  if not config.coop.init:
    return int(config.coop.n_ctx)
  _, mask = tokenizer(config.coop.init)
  return int(mask.sum()) - 2


def extend_task(config, tokenizer, class_names):
  n = context_length(config, tokenizer)
  prefix = config.coop.init or " ".join([PLACEHOLDER] * n)
  ids, mask = tokenizer([f"{prefix} {name}." for name in class_names])
  prefix_ids, _ = tokenizer(prefix)
  if not (ids[:, 1 : 1 + n] == prefix_ids[:, 1 : 1 + n]).all():
    raise ValueError(
      f"the context prefix {prefix!r} does not tokenize to the same "
      f"{n} tokens in every class prompt."
    )
  return {"coop_ids": ids, "coop_mask": mask}


def init_head(init):
  config, task = init.config, init.task
  n = context_length(config, init.tokenizer)
  table = heads.token_embedding_table(init.params)
  width = table.shape[-1]
  if config.coop.init:
    context = jnp.asarray(table)[jnp.asarray(task["coop_ids"][0, 1 : 1 + n])]
  else:
    context = 0.02 * jax.random.normal(init.rng, (n, width), jnp.float32)
  if config.coop.class_specific:
    context = jnp.tile(context[None], (task["coop_ids"].shape[0], 1, 1))
  return {"context": jnp.asarray(context, jnp.float32)}


def class_embeddings(module, head, task):
  """Inside apply: [C, E] projected text embeddings of the learned prompts."""
  return heads.encode_with_context(
    module, task["coop_ids"], task["coop_mask"], head["context"]
  )


def logits(module, images, head, task):
  return targets.zero_shot(
    module, images, {"class_embeddings": class_embeddings(module, head, task)}
  )


def eval_head(module, params, head, task):
  embed = heads.jitted_apply(module, class_embeddings)
  task = {"coop_ids": task["coop_ids"], "coop_mask": task["coop_mask"]}
  return {
    "class_embeddings": np.asarray(jax.device_get(embed(params, head, task)))
  }


METHOD = Method(
  name="coop",
  trainable=lambda config, model_config: r"head/context",
  init_head=init_head,
  classifier=targets.zero_shot,
  logits=logits,
  eval_head=eval_head,
  extend_task=extend_task,
  options={"n_ctx": 4, "init": "", "class_specific": False},
  study_lr=2e-3,
)
