r"""One training loop for every adaptation method (ZS, LP, FT, FLCP, CoOp, CLIP-Adapter).

    python -m rationality_jax.main --config=configs/train.py:method=flcp,model=random:tiny \
        --workdir=/tmp/flcp
    rationality_jax.run.train.train_and_evaluate(config, workdir)   # the same, as a library

A method is configuration (`rationality_jax.methods`): which parameters train
(a regex over parameter paths -> `optax.multi_transform`), which loss
(cross-entropy or FLYP's contrastive), which head. The loop:

  * mesh from ``config.mesh``; the batch is split over every axis, the train
    state FSDP-sharded over ``fsdp`` (`rationality_jax.sharding`); one
    `jax.jit` step with donated state and no host round-trip inside;
  * multi-host: ``config.distributed.initialize``; the same command runs on
    every host, each reads its own part of every global batch;
  * orbax checkpoints (`rationality_jax.run.checkpoints`, the contract with
    evaluation) every ``train.checkpoint.every_steps`` and at the end, resumed
    with the input iterator and RNG state; a non-finite state is never saved;
  * hooks (`rationality_jax.run.hooks`): progress bar and TensorBoard every
    ``train.log_every`` steps, where a NaN/inf loss stops the run; SIGTERM
    saves and exits 143;
  * at the end, with ``train.eval_accuracy``, the top-1 accuracy on
    ``eval_data``; ``train_result.json`` is written once, by the run that
    trained the last step.

The workdir's ``fingerprint.json`` says what the run is (model file, method,
data, recipe); resuming it with another config is refused
(`rationality_jax.run.provenance`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import os
from typing import Any

import grain
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from rationality_jax import console
from rationality_jax import data
from rationality_jax import files
from rationality_jax import methods
from rationality_jax import sharding
from rationality_jax.models import checkpoint as model_checkpoint
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import hooks
from rationality_jax.run import optim
from rationality_jax.run import provenance
from rationality_jax.run import resolve
from rationality_jax.run import validate

RESULT = "train_result.json"
SIGTERM_EXIT = hooks.SIGTERM_EXIT


# ============================================================= data ====


def train_iterator(config: ml_collections.ConfigDict, source, spec: str):
  """This host's batches (host-local numpy), shuffled, repeating, checkpointable."""
  t = config.train
  return data.make_iterator(
    source,
    spec,
    t.batch_size,
    mesh=None,
    seed=config.seed,
    shuffle=True,
    num_epochs=None,
    drop_remainder=True,
    num_threads=t.input_threads,
    prefetch=t.input_prefetch,
    num_workers=t.input_workers,
  )


def total_steps(config: ml_collections.ConfigDict, num_examples: int) -> int:
  t = config.train
  if config.method == "zs":
    return 0
  if t.total_steps >= 0:
    return int(t.total_steps)
  return math.ceil(t.num_epochs * num_examples / t.batch_size)


# ======================================================= train step ====


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


# ============================================================= setup ====


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


@dataclasses.dataclass
class Setup:
  """Everything the loop needs before the first step (training and WiSE-FT)."""

  method: methods.Method
  mesh: jax.sharding.Mesh
  module: Any
  params: Any
  family: Any
  head: Any
  task: dict
  source: Any
  spec: str
  class_names: list[str]
  step_rng: jax.Array
  meta: dict


def setup(config: ml_collections.ConfigDict, workdir: str) -> Setup:
  method = methods.METHODS[config.method]
  head_rng, step_rng = jax.random.split(jax.random.PRNGKey(config.seed))
  mesh = sharding.make_mesh([tuple(axis) for axis in config.mesh])
  module, params, family = resolve.model(config)
  source, class_names = resolve.source(config, workdir, "train")
  spec = resolve.spec(config, module, family, "train")
  task, tokenizer = resolve.task(config, module, family, class_names)
  task.update(method.extend_task(config, tokenizer, class_names))
  fingerprint = resolve.train_fingerprint(config)
  zero_shot = functools.partial(
    resolve.zero_shot_head,
    config,
    module,
    params,
    task,
    workdir,
    {
      "model": fingerprint["model"],
      "dtype": fingerprint["dtype"],
      "data": fingerprint["data"],
      "templates": config.head.templates,
      "class_names": list(class_names),
    },
  )
  head = method.init_head(
    methods.HeadInit(
      module=module,
      params=params,
      task=task,
      config=config,
      rng=head_rng,
      zero_shot=zero_shot,
      tokenizer=tokenizer,
    )
  )
  head = jax.tree.map(np.asarray, jax.device_get(head))
  meta = {
    "method": config.method,
    "model": model_checkpoint.config_to_dict(module.config),
    "model_path": config.model.path,
    "dataset": config.train_data.name,
    "class_names": list(class_names),
    "templates": config.head.templates,
    "config": config_lib.to_dict(config),
    "fingerprint": fingerprint,
  }
  return Setup(
    method=method,
    mesh=mesh,
    module=module,
    params=params,
    family=family,
    head=head,
    task=task,
    source=source,
    spec=spec,
    class_names=list(class_names),
    step_rng=step_rng,
    meta=meta,
  )


# ============================================================== loop ====


def _check_input_workers(manager, step: int, iterator) -> None:
  """Refuses a checkpoint whose input state does not fit `iterator`'s workers
  (another number of them, or an older version's workers that handed over
  single examples, whose positions grain would restore at the wrong place)."""
  meta = manager.restore(
    step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())
  )["meta"]
  saved = meta.get("input") or {  # written before the input record
    "num_workers": meta.get("config", {})
    .get("train", {})
    .get("input_workers", 0)
  }
  mismatch = iterator.worker_mismatch({"config": saved})
  if mismatch is not None:
    raise config_lib.ConfigError(
      f"config.train.input_workers: checkpoint {step} of {manager.directory}: "
      f"{mismatch}; resume with the number the run was started with, or "
      "train in a fresh workdir"
    )


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, fresh: bool = False
) -> dict:
  """Trains ``config.method`` in `workdir` (resuming if it has checkpoints).

  `fresh`: when `workdir` holds a run of another configuration, train in a
  new subdirectory of it instead of refusing (`rationality_jax.run.provenance`).

  Returns:
    ``{'step', 'loss' (the last logged), 'losses' ([(step, loss)] logged by
    this invocation), 'accuracy' (on eval_data or None), 'checkpoint_dir',
    'trained_steps' (by this invocation)}`` on every process.
  """
  validate.validate_run(config)
  sharding.initialize_distributed(config.distributed)
  workdir = os.path.abspath(workdir)
  workdir = provenance.claim(
    workdir, resolve.train_fingerprint(config), "a training run", fresh
  )
  s = setup(config, workdir)
  method, mesh, module = s.method, s.mesh, s.module

  # ---------------------------------------------------- shardings & state
  trainable = {"params": s.params, "head": s.head}
  labels = trainable_labels(config, method, module.config, trainable)
  steps = total_steps(config, len(s.source))
  if steps and config.train.batch_size > len(s.source):
    raise config_lib.ConfigError(
      f"config.train.batch_size: {config.train.batch_size} is larger than "
      f"the {len(s.source)} examples of {config.train_data.name}/"
      f"{config.train_data.split}"
    )
  schedule = optim.schedule(config.train.optim, steps)
  tx = optim.make_optimizer(config.train.optim, labels, steps)

  def init_state(trainable, rng):
    return {
      "step": jnp.zeros((), jnp.int32),
      **trainable,
      "opt_state": tx.init(trainable),
      "rng": rng,
    }

  abstract = jax.eval_shape(init_state, trainable, s.step_rng)
  fsdp_axis = (
    config.sharding.fsdp_axis if config.sharding.params == "fsdp" else None
  )
  state_shardings = sharding.fsdp_shardings(abstract, mesh, fsdp_axis)
  replicated = sharding.replicated(mesh)
  trainable = sharding.put(
    trainable,
    {"params": state_shardings["params"], "head": state_shardings["head"]},
  )
  state = jax.jit(init_state, out_shardings=state_shardings)(
    trainable, sharding.put(s.step_rng, replicated)
  )
  # The class prompts are only read by eval_head (outside the step).
  task = sharding.put(
    {k: v for k, v in s.task.items() if not k.startswith("prompt_")},
    replicated,
  )
  batch_sharding = sharding.batch_sharding(mesh)
  train_step = jax.jit(
    make_train_step(method, module, config, tx, labels, schedule),
    in_shardings=(state_shardings, batch_sharding, replicated),
    out_shardings=(state_shardings, replicated),
    donate_argnums=(0,),
  )

  # ----------------------------------------------------- resume if possible
  iterator = train_iterator(config, s.source, s.spec)
  manager = checkpoints.manager(workdir, config)
  restored = manager.latest_step()
  if restored is not None:
    _check_input_workers(manager, restored, iterator)
    target = jax.tree.map(
      lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
      abstract,
      state_shardings,
    )
    state = manager.restore(
      restored,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target),
        data=grain.checkpoint.CheckpointRestore(iterator.grain_iterator),
      ),
    )["state"]
    console.stage(f"resumed {workdir} at step {restored}")

  def eval_head(state):
    params, head = state["params"], state["head"]
    if jax.process_count() > 1:  # computed on each host from gathered weights
      params, head = checkpoints.to_host(params), checkpoints.to_host(head)
    return jax.tree.map(
      np.asarray,
      jax.device_get(method.eval_head(module, params, head, s.task)),
    )

  # ------------------------------------------------------------ the loop
  first = 0 if restored is None else restored
  meta = s.meta
  save = functools.partial(
    checkpoints.save,
    manager,
    iterator=iterator,
    meta=meta,
    eval_head_fn=eval_head,
  )
  metrics, history = None, []
  try:
    if restored is None:
      save(step=0, state=state, force=steps == 0)
    if first < steps:
      reporter = hooks.Reporter(workdir, first, steps, config.train.batch_size)
      preemption = hooks.Preemption(manager)
      try:
        for step in range(first + 1, steps + 1):
          local = next(iterator)
          if step == first + 1:
            resolve.check_images(local["image"].shape, module, "train")
          batch = sharding.global_batch(local, batch_sharding)
          state, step_metrics = train_step(state, batch, task)
          if step % config.train.log_every == 0 or step == steps:
            metrics = {
              k: float(v) for k, v in jax.device_get(step_metrics).items()
            }
            hooks.check_finite(step, metrics, config)
            reporter(step, metrics)
            history.append((step, metrics["loss"]))
          else:
            reporter.step(step)
          if preemption.requested(step):
            save(step=step, state=state, force=True)
            manager.wait_until_finished()
            console.stage(f"SIGTERM: saved step {step} in {manager.directory}")
            raise SystemExit(SIGTERM_EXIT)
          if step < steps:
            save(step=step, state=state)
      finally:
        preemption.restore()
        reporter.close()
      if manager.latest_step() != steps:
        save(step=steps, state=state, force=True)
    manager.wait_until_finished()
  finally:
    iterator.close()  # ends the input's worker processes, if any
    # Waits for in-flight saves and removes what a failed save left behind.
    manager.close()
    checkpoints.remove_temporary(manager.directory)

  result_path = os.path.join(workdir, RESULT)
  trained_now = steps - first
  if not trained_now and os.path.exists(result_path):
    # Nothing trained: the finished run's result stands as it is.
    return dict(files.read_json(result_path), trained_steps=0)
  accuracy = None
  if config.train.eval_accuracy and config.eval_data.split:
    accuracy = evaluate_accuracy(config, workdir, s, state, eval_head(state))
    console.stage(
      f"{config.method} accuracy on {config.eval_data.split}: {accuracy:.4f}"
    )
  result = {
    "step": steps,
    "loss": None if metrics is None else metrics["loss"],
    "losses": history,
    "accuracy": accuracy,
    "checkpoint_dir": os.path.join(workdir, checkpoints.CHECKPOINTS),
  }
  if jax.process_index() == 0:
    files.write_json(result_path, result)
  return dict(result, trained_steps=trained_now)


# ======================================================== evaluation ====


def evaluate_accuracy(config, workdir, s: Setup, state, head) -> float:
  """Top-1 accuracy of the method's classifier on eval_data (all hosts)."""
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
