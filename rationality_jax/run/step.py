"""The training step every method shares, and what it updates.

  labels = step.trainable_labels(config, method, model_config, trainable)
  update = step.make_train_step(method, module, config, tx, labels, schedule)
  state, metrics = jax.jit(update, donate_argnums=(0,))(state, batch, task)

The step is pure and free of host round-trips: the training loop
(`rationality_jax.run.train`) and the benchmarks jit it with their shardings.
"""

from __future__ import annotations

from typing import Any

import jax
import optax

from rationality_jax import methods
from rationality_jax.run import optim


def trainable_labels(config, method, model_config, trainable) -> Any:
  """`optim.trainable_labels` of ``{'params', 'head'}``: the method's regex
  (or ``config.trainable``); with ``train.release_frozen_head`` the head is
  frozen at its initial values, as the release's LP/FT heads on CUB, Dogs
  and Caltech (see `config.default`)."""
  labels = optim.trainable_labels(
    trainable, config.trainable or method.trainable(config, model_config)
  )
  if config.train.release_frozen_head:
    labels = dict(
      labels, head=jax.tree.map(lambda _: optim.FREEZE, labels["head"])
    )
  return labels


def make_train_step(method, module, config, tx, labels, schedule):
  """step(state, batch, task) -> (state, metrics); pure, jitted by the caller."""
  loss_fn = methods.make_loss_fn(method, module, config)

  def step(state, batch, task):
    trainable = {"params": state["params"], "head": state["head"]}
    (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(
      trainable, batch, task
    )
    updates, opt_state = tx.update(grads, state["opt_state"], trainable)
    trainable = optim.apply_updates(trainable, updates, labels)
    trained_grads = [
      g
      for g, label in zip(jax.tree.leaves(grads), jax.tree.leaves(labels))
      if label == optim.TRAIN
    ]
    metrics = {
      "loss": loss,
      "grad_norm": optax.global_norm(trained_grads),
      "learning_rate": schedule(state["step"]),
      **aux,
    }
    new_state = dict(
      state, step=state["step"] + 1, opt_state=opt_state, **trainable
    )
    return new_state, metrics

  return step
