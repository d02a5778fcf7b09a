"""Top-1 accuracy of a trained state on ``eval_data``, at the end of training.

The training loop's last stage (``train.eval_accuracy``); the rationality
evaluation with heatmaps and records is `rationality_jax.run.evaluate`.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp

from rationality_jax import console
from rationality_jax import data
from rationality_jax import sharding
from rationality_jax.run import resolve


def evaluate_accuracy(config, workdir, s, state, head) -> float:
  """Top-1 accuracy of the method's classifier on eval_data (all hosts).

  `s`: the run's `train.Setup`; `state`: its (sharded) train state; `head`:
  the head the classifier takes.
  """
  source, _ = resolve.source(config, workdir, "eval")
  spec = resolve.spec(config, s.module, s.family, "eval")
  batch_sharding = sharding.batch_sharding(s.mesh)
  replicated = sharding.replicated(s.mesh)
  head = sharding.put(head, replicated)
  module, classifier = s.module, s.method.classifier

  @functools.partial(jax.jit, out_shardings=replicated)
  def correct(params, head, batch):
    logits = module.apply(
      {"params": params}, batch["image"], head, method=classifier
    )
    right = (jnp.argmax(logits, -1) == batch["label"]) & batch["valid"]
    return right.sum(), batch["valid"].sum()

  iterator = data.make_iterator(
    source,
    spec,
    config.evaluate.batch_size,
    mesh=None,
    shuffle=False,
    num_epochs=1,
    drop_remainder=False,
    num_threads=config.evaluate.input_threads,
    num_workers=config.evaluate.input_workers,
  )
  right = total = 0
  with console.progress(len(source), "accuracy", "img") as bar:
    try:
      for local in iterator:
        r, n = correct(
          state["params"], head, sharding.global_batch(local, batch_sharding)
        )
        right, total = right + int(r), total + int(n)
        bar.update(int(n))
    finally:
      iterator.close()
  return right / max(total, 1)
