"""Heads and the text side they need: class prompts, zero-shot embeddings, learned contexts.

A *task* is the per-dataset text input of every method, host numpy built once
by `make_task` and passed (replicated) to the jitted step:

  prompt_ids, prompt_mask    [C, K, T] the class prompts with K templates
                             (the zero-shot head, FLCP's rebuilt head)
  caption_ids, caption_mask  [C, T] "a photo of a {class}" (FLCP's captions:
                             the caption of an example is row `label`)

Zero-shot class embeddings follow CLIP's ensemble: every prompt's projected
text embedding is L2-normalized, averaged over the K templates and normalized
again. `zero_shot_head` caches them on disk per (model, dataset, templates).
"""

from __future__ import annotations

from collections.abc import Sequence
import functools
import hashlib
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax import data
from rationality_jax import files
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import normalize

STUDY_CAPTION = "a photo of a {}"
# The run config's ``head`` section, read by every method: the prompt
# templates (`data.templates`), where zero-shot heads are cached ('' = the
# workdir) and the prompt names' rule (`data.class_names`).
OPTIONS = {"templates": "study", "cache_dir": "", "class_names": "study"}
CHOICES = {
  "templates": data.classnames.TEMPLATE_SETS,
  "class_names": data.classnames.RULES,
}
TOKEN_EMBEDDINGS = ("token_embedding", "word_embeddings")  # CLIP, BERT


def make_task(
  tokenizer, class_names: Sequence[str], templates: str = "study"
) -> dict[str, np.ndarray]:
  """Token ids of the class prompts and FLCP captions (see the module docstring).

  Args:
    tokenizer: `rationality_jax.models.tokenizer(family, context_length)`.
    class_names: C prompt names (`rationality_jax.data.class_names`).
    templates: 'study' ("a photo of a {}") or 'clip80' (CLIP's ImageNet ensemble).
  """
  prompts = data.prompts(class_names, templates)
  num_templates = len(prompts[0])
  ids, mask = tokenizer([p for row in prompts for p in row])
  length = ids.shape[-1]
  caption_ids, caption_mask = tokenizer(
    [STUDY_CAPTION.format(n) for n in class_names]
  )
  return {
    "prompt_ids": ids.reshape(len(class_names), num_templates, length),
    "prompt_mask": mask.reshape(len(class_names), num_templates, length),
    "caption_ids": caption_ids,
    "caption_mask": caption_mask,
  }


@functools.lru_cache(maxsize=16)
def jitted_apply(module: VisionLanguageModel, method) -> Any:
  """`module.apply` of `method` with params first, jitted and cached.

  ``jax.jit(lambda params, *args: module.apply({'params': params}, *args,
  method=method))``.
  """
  return jax.jit(
    lambda params, *args: module.apply({"params": params}, *args, method=method)
  )


def encode_texts(
  module: VisionLanguageModel,
  params: Any,
  ids: np.ndarray,
  mask: np.ndarray,
  chunk: int = 256,
) -> np.ndarray:
  """Projected text embeddings [N, E] float32 of [N, T] token ids, jitted in chunks."""
  encode = jitted_apply(module, VisionLanguageModel.encode_text)
  n = ids.shape[0]
  size = min(chunk, n)
  out = []
  for start in range(0, n, size):
    part_ids, part_mask = ids[start : start + size], mask[start : start + size]
    pad = size - part_ids.shape[0]
    part_ids = np.pad(part_ids, ((0, pad), (0, 0)))
    part_mask = np.pad(part_mask, ((0, pad), (0, 0)))
    out.append(
      np.asarray(jax.device_get(encode(params, part_ids, part_mask)))[
        : size - pad
      ]
    )
  return np.concatenate(out)


def ensemble(embeddings: jax.Array) -> jax.Array:
  """[C, K, E] prompt embeddings -> [C, E]: normalize, mean over K, normalize."""
  return normalize(normalize(embeddings).mean(axis=1))


def zero_shot_embeddings(
  module: VisionLanguageModel, params: Any, task: dict[str, np.ndarray]
) -> np.ndarray:
  """[C, E] float32 unit-norm class embeddings from ``task['prompt_ids']``."""
  ids, mask = task["prompt_ids"], task["prompt_mask"]
  c, k, t = ids.shape
  flat = encode_texts(
    module, params, ids.reshape(c * k, t), mask.reshape(c * k, t)
  )
  return np.asarray(ensemble(jnp.asarray(flat.reshape(c, k, -1))))


def zero_shot_head(
  module: VisionLanguageModel,
  params: Any,
  task: dict[str, np.ndarray],
  cache_dir: str | None = None,
  cache_key: Any = None,
) -> dict[str, np.ndarray]:
  """``{'class_embeddings': [C, E]}``, read from / written to `cache_dir` when given.

  The cache file is named by a hash of `cache_key` (what identifies the model,
  e.g. its path, and the dataset) and the prompt token ids (the class names and
  templates), so a different model, dataset or template set never collides.
  """
  path = None
  if cache_dir and cache_key is not None:
    digest = hashlib.sha256(
      json.dumps(cache_key, sort_keys=True, default=str).encode()
    )
    digest.update(np.ascontiguousarray(task["prompt_ids"]).tobytes())
    path = os.path.join(cache_dir, f"zero_shot_{digest.hexdigest()[:20]}.npz")
    if os.path.exists(path):
      with np.load(path) as f:
        return {"class_embeddings": f["class_embeddings"]}
  head = {"class_embeddings": zero_shot_embeddings(module, params, task)}
  if path is not None and jax.process_index() == 0:
    files.write_npz(path, **head)
  return head


def encode_with_context(
  module: VisionLanguageModel,
  token_ids: jax.Array,
  attention_mask: jax.Array,
  context: jax.Array,
) -> jax.Array:
  """Projected text embeddings with learned vectors in place of token embeddings 1..n.

  Inside ``module.apply``. The text tower's token-embedding lookup
  (``token_embedding`` for CLIP, ``word_embeddings`` for BERT) is intercepted
  and positions 1..n (after the start/[CLS] token) are replaced by `context`,
  so the tower's own code (blocks, pooling at the end-of-text token) runs
  unchanged.

  Args:
    module: a bound `VisionLanguageModel`.
    token_ids, attention_mask: [C, T]; positions 1..n hold placeholders.
    context: [n, D] (shared by every class) or [C, n, D] (class-specific).

  Returns:
    [C, E] float32.
  """
  n = context.shape[-2]

  def interceptor(next_fun, args, kwargs, info):
    out = next_fun(*args, **kwargs)
    if (
      info.method_name == "__call__"
      and isinstance(info.module, nn.Embed)
      and info.module.name in TOKEN_EMBEDDINGS
    ):
      ctx = jnp.broadcast_to(
        context.astype(out.dtype), out.shape[:1] + context.shape[-2:]
      )
      out = out.at[:, 1 : 1 + n].set(ctx)
    return out

  with nn.intercept_methods(interceptor):
    return module.encode_text(token_ids, attention_mask)


def token_embedding_table(params: Any) -> Any:
  """The text tower's [vocab, D] token embedding matrix (CLIP or BERT)."""
  text = params["text"]
  for name in TOKEN_EMBEDDINGS:
    if name in text:
      return text[name]["embedding"]
  raise KeyError(
    f"no token embedding among {list(text)}; expected one of {TOKEN_EMBEDDINGS}."
  )
