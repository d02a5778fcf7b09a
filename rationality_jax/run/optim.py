"""Optimisers, schedules and the trainable set, from config.

  labels = optim.trainable_labels(trainable, r"params/(vision|text)/.*|head/.*")
  tx = optim.make_optimizer(config.train.optim, labels, total_steps)

What trains is a regex over parameter paths, so a new method is a config and
not a code path. A path joins the dict keys with '/', e.g.
``params/vision/block_0/attn/query/kernel`` or ``head/kernel``; a leaf trains
when the regex matches the whole path (`re.fullmatch`). Frozen leaves get
`optax.set_to_zero` inside `optax.multi_transform` (no optimiser state, no
gradient computed: XLA drops the unused backward), and the train step leaves
them untouched, so they stay bit-identical.

Presets (``config.train.optim.name``):
  * ``'adam'``: the study's Adam (b1 0.9, b2 0.999, eps 1e-8), no weight decay;
    with ``schedule='constant'`` no schedule (the study's recipe).
  * ``'adamw'``: AdamW with ``weight_decay`` on matrices only (ndim >= 2).
  * ``'sgd'``: SGD with ``momentum`` (the optimiser ablation).
Schedules (``config.train.optim.schedule``): ``'constant'`` or ``'cosine'`` (linear
warmup over ``warmup_steps``, -1 = 10% of the steps, then cosine decay to 0 at the last step).
"""

from __future__ import annotations

import re
from typing import Any

import jax
import ml_collections
import optax

TRAIN = "train"
FREEZE = "freeze"


def path_name(path) -> str:
  """A jax key path -> 'a/b/c'."""
  parts = []
  for key in path:
    for attr in ("key", "name", "idx"):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return "/".join(parts)


def named_leaves(tree: Any) -> list[tuple[str, Any]]:
  """[(path name, leaf)] in flattening order."""
  return [
    (path_name(p), v) for p, v in jax.tree_util.tree_flatten_with_path(tree)[0]
  ]


def trainable_labels(tree: Any, pattern: str) -> Any:
  """Same structure as `tree`: 'train' where `pattern` fullmatches the path, else 'freeze'.

  An empty pattern trains nothing (zero-shot).
  """
  regex = re.compile(pattern) if pattern else None
  return jax.tree_util.tree_map_with_path(
    lambda p, _: (
      TRAIN if regex is not None and regex.fullmatch(path_name(p)) else FREEZE
    ),
    tree,
  )


def schedule(
  config: ml_collections.ConfigDict, total_steps: int
) -> optax.Schedule:
  """Learning rate per step from ``config.lr``, ``config.schedule``, ``config.warmup_steps``."""
  if config.schedule == "constant":
    return optax.constant_schedule(config.lr)
  if config.schedule == "cosine":
    warmup = int(config.get("warmup_steps", 0))
    warmup = total_steps // 10 if warmup < 0 else warmup
    return optax.warmup_cosine_decay_schedule(
      0.0, config.lr, warmup, max(total_steps, warmup + 1)
    )
  raise ValueError(
    f"train.optim.schedule={config.schedule!r}; choose 'constant' or 'cosine'."
  )


def base_optimizer(
  config: ml_collections.ConfigDict, total_steps: int
) -> optax.GradientTransformation:
  """The optimiser of the trainable leaves (see the module docstring)."""
  lr = schedule(config, total_steps)
  if config.name == "adam":
    tx = optax.adam(lr, b1=config.b1, b2=config.b2, eps=config.eps)
  elif config.name == "adamw":
    tx = optax.adamw(
      lr,
      b1=config.b1,
      b2=config.b2,
      eps=config.eps,
      weight_decay=config.weight_decay,
      mask=lambda params: jax.tree.map(lambda x: x.ndim >= 2, params),
    )
  elif config.name == "sgd":
    tx = optax.sgd(lr, momentum=config.get("momentum", 0.9) or None)
  else:
    raise ValueError(
      f"optim.name={config.name!r}; choose 'adam', 'adamw' or 'sgd'."
    )
  if config.get("grad_clip_norm"):
    tx = optax.chain(optax.clip_by_global_norm(config.grad_clip_norm), tx)
  return tx


def make_optimizer(
  config: ml_collections.ConfigDict, labels: Any, total_steps: int
) -> optax.GradientTransformation:
  """`multi_transform`: the configured optimiser on 'train' leaves, zero on 'freeze'."""
  return optax.multi_transform(
    {TRAIN: base_optimizer(config, total_steps), FREEZE: optax.set_to_zero()},
    labels,
  )


def apply_updates(params: Any, updates: Any, labels: Any) -> Any:
  """params + updates on trainable leaves; frozen leaves returned as they are."""
  return jax.tree.map(
    lambda p, u, label: p + u.astype(p.dtype) if label == TRAIN else p,
    params,
    updates,
    labels,
  )


def study_preset() -> ml_collections.ConfigDict:
  """The release's Adam: (0.9, 0.999, eps 1e-8), no weight decay, no schedule."""
  return ml_collections.ConfigDict(
    dict(
      name="adam",
      lr=1e-5,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      weight_decay=0.0,
      schedule="constant",
      warmup_steps=0,
      grad_clip_norm=0.0,
      momentum=0.9,
    )
  )


def adamw_cosine_preset() -> ml_collections.ConfigDict:
  """AdamW (weight decay 0.1 on matrices) with 10% linear warmup then cosine."""
  return ml_collections.ConfigDict(
    dict(
      name="adamw",
      lr=1e-5,
      b1=0.9,
      b2=0.999,
      eps=1e-8,
      weight_decay=0.1,
      schedule="cosine",
      warmup_steps=-1,
      grad_clip_norm=1.0,
      momentum=0.9,
    )
  )
