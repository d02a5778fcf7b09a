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

from collections.abc import Callable
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
import orbax.checkpoint as ocp

from rationality_jax import console
from rationality_jax import data
from rationality_jax import files
from rationality_jax import methods
from rationality_jax import sharding
from rationality_jax.models import checkpoint as model_checkpoint
from rationality_jax.run import accuracy as accuracy_lib
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import hooks
from rationality_jax.run import optim
from rationality_jax.run import record
from rationality_jax.run import resolve
from rationality_jax.run import step as step_lib
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


def check_batch(config: ml_collections.ConfigDict, num_examples: int | None):
  """The run's total steps; refuses a batch larger than the training split
  (None examples: not known yet, checked again once the data is read)."""
  if num_examples is None:
    return None
  steps = total_steps(config, num_examples)
  if steps and config.train.batch_size > num_examples:
    raise config_lib.ConfigError(
      f"config.train.batch_size: {config.train.batch_size} is larger than "
      f"the {num_examples} examples of {config.train_data.name}/"
      f"{config.train_data.split}"
    )
  return steps


def total_steps(config: ml_collections.ConfigDict, num_examples: int) -> int:
  t = config.train
  if config.method == "zs":
    return 0
  if t.total_steps >= 0:
    return int(t.total_steps)
  return math.ceil(t.num_epochs * num_examples / t.batch_size)


# ============================================================= setup ====


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
  mask_task, mask_meta = resolve.mask_selection(config, workdir, source, method)
  task.update(mask_task)
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
    **mask_meta,
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


@dataclasses.dataclass
class Compiled:
  """The sharded train state and the jitted step of one run."""

  state: Any
  step: Callable  # (state, batch, task) -> (state, metrics), donated
  task: Any  # the replicated task arrays the step reads
  batch_sharding: jax.sharding.NamedSharding
  abstract: Any  # the state's shapes and dtypes
  shardings: Any  # the state's shardings
  steps: int  # the run's total


def compile_training(config: ml_collections.ConfigDict, s: Setup) -> Compiled:
  """The initial state on the mesh (FSDP over ``sharding.fsdp_axis``) and
  the jitted step; refuses a batch larger than the training split."""
  trainable = {"params": s.params, "head": s.head}
  labels = step_lib.trainable_labels(
    config, s.method, s.module.config, trainable
  )
  steps = check_batch(config, len(s.source))
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
  shardings = sharding.fsdp_shardings(abstract, s.mesh, fsdp_axis)
  replicated = sharding.replicated(s.mesh)
  trainable = sharding.put(
    trainable, {"params": shardings["params"], "head": shardings["head"]}
  )
  state = jax.jit(init_state, out_shardings=shardings)(
    trainable, sharding.put(s.step_rng, replicated)
  )
  batch_sharding = sharding.batch_sharding(s.mesh)
  schedule = optim.schedule(config.train.optim, steps)
  step = jax.jit(
    step_lib.make_train_step(s.method, s.module, config, tx, labels, schedule),
    in_shardings=(shardings, batch_sharding, replicated),
    out_shardings=(shardings, replicated),
    donate_argnums=(0,),
  )
  # The class prompts are only read by eval_head (outside the step).
  task = sharding.put(
    {k: v for k, v in s.task.items() if not k.startswith("prompt_")},
    replicated,
  )
  return Compiled(state, step, task, batch_sharding, abstract, shardings, steps)


def _restore(manager, iterator, compiled: Compiled, workdir: str):
  """(state, step) of the newest checkpoint with the input restored, or
  (the initial state, None) when there is none."""
  restored = manager.latest_step()
  if restored is None:
    return compiled.state, None
  _check_input_workers(manager, restored, iterator)
  target = jax.tree.map(
    lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
    compiled.abstract,
    compiled.shardings,
  )
  state = manager.restore(
    restored,
    args=ocp.args.Composite(
      state=ocp.args.StandardRestore(target),
      data=grain.checkpoint.CheckpointRestore(iterator.grain_iterator),
    ),
  )["state"]
  console.stage(f"resumed {workdir} at step {restored}")
  return state, restored


def eval_head_fn(s: Setup) -> Callable:
  """state -> the head the method's classifier takes (host numpy)."""

  def eval_head(state):
    params, head = state["params"], state["head"]
    if jax.process_count() > 1:  # computed on each host from gathered weights
      params, head = checkpoints.to_host(params), checkpoints.to_host(head)
    return jax.tree.map(
      np.asarray,
      jax.device_get(s.method.eval_head(s.module, params, head, s.task)),
    )

  return eval_head


def _loop(config, workdir, s, compiled, state, first, iterator, save, manager):
  """Steps ``first + 1 .. total``: logs, finite checks, periodic saves and
  SIGTERM (saved, exit 143). Returns (state, last logged metrics, history)."""
  steps, metrics, history = compiled.steps, None, []
  reporter = hooks.Reporter(workdir, first, steps, config.train.batch_size)
  preemption = hooks.Preemption(manager)
  try:
    for step in range(first + 1, steps + 1):
      local = next(iterator)
      if step == first + 1:
        resolve.check_images(local["image"].shape, s.module, "train")
      batch = sharding.global_batch(local, compiled.batch_sharding)
      state, step_metrics = compiled.step(state, batch, compiled.task)
      if step % config.train.log_every == 0 or step == steps:
        metrics = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
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
  return state, metrics, history


def train_and_evaluate(
  config: ml_collections.ConfigDict, workdir: str, fresh: bool = False
) -> dict:
  """Trains ``config.method`` in `workdir` (resuming if it has checkpoints).

  Validates, plans and claims `workdir` first (`rationality_jax.run.record`):
  a run of another configuration there is refused, or with `fresh` trained
  in a new subdirectory; a refused run writes nothing.

  Returns:
    ``{'step', 'loss' (the last logged), 'losses' ([(step, loss)] logged by
    this invocation), 'accuracy' (on eval_data or None), 'checkpoint_dir',
    'trained_steps' (by this invocation)}`` on every process.
  """
  validate.validate_run(config)
  sharding.initialize_distributed(config.distributed)
  fingerprint = resolve.train_fingerprint(config)
  what = "a training run"
  directory = record.plan(workdir, fingerprint, what, fresh)
  check_batch(config, resolve.split_size(config, directory, "train"))
  with record.open_run(
    directory, fingerprint, config, "train", what=what
  ) as run:
    s = setup(config, directory)
    compiled = compile_training(config, s)
    run.start(total_steps=compiled.steps)
    state, metrics, history, first = _train(config, directory, s, compiled)
    result_path = os.path.join(directory, RESULT)
    trained_now = compiled.steps - first
    if not trained_now and os.path.exists(result_path):
      # Nothing trained: the finished run's result stands as it is.
      result = files.read_json(result_path)
    else:
      result = _result(config, directory, s, compiled, state, metrics, history)
    run.complete(
      outputs=[RESULT], step=compiled.steps, total_steps=compiled.steps
    )
  return dict(result, trained_steps=trained_now)


def _train(config, directory, s, compiled):
  """Restores the newest checkpoint and trains to the end, saving as it
  goes. Returns (state, last logged metrics, history, first step)."""
  steps = compiled.steps
  iterator = train_iterator(config, s.source, s.spec)
  manager = checkpoints.manager(directory, config)
  save = functools.partial(
    checkpoints.save,
    manager,
    iterator=iterator,
    meta=s.meta,
    eval_head_fn=eval_head_fn(s),
  )
  metrics, history = None, []
  try:
    state, restored = _restore(manager, iterator, compiled, directory)
    first = restored or 0
    if restored is None:
      save(step=0, state=state, force=steps == 0)
    if first < steps:
      state, metrics, history = _loop(
        config, directory, s, compiled, state, first, iterator, save, manager
      )
      if manager.latest_step() != steps:
        save(step=steps, state=state, force=True)
    manager.wait_until_finished()
  finally:
    iterator.close()  # ends the input's worker processes, if any
    # Waits for in-flight saves and removes what a failed save left behind.
    manager.close()
    checkpoints.remove_temporary(manager.directory)
  return state, metrics, history, first


def _result(config, directory, s, compiled, state, metrics, history) -> dict:
  """``train_result.json`` of a run that trained its last step (written by
  process 0), with the top-1 accuracy on eval_data when asked for."""
  accuracy = None
  if config.train.eval_accuracy and config.eval_data.split:
    accuracy = accuracy_lib.evaluate_accuracy(
      config, directory, s, state, eval_head_fn(s)(state)
    )
    console.stage(
      f"{config.method} accuracy on {config.eval_data.split}: {accuracy:.4f}"
    )
  result = {
    "step": compiled.steps,
    "total_steps": compiled.steps,
    "loss": None if metrics is None else metrics["loss"],
    "losses": history,
    "accuracy": accuracy,
    "checkpoint_dir": os.path.join(directory, checkpoints.CHECKPOINTS),
  }
  if jax.process_index() == 0:
    files.write_json(os.path.join(directory, RESULT), result)
  return result
