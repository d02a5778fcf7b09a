r"""One training loop for every adaptation method (ZS, LP, FT, FLCP, CoOp, CLIP-Adapter, WiSE-FT).

    python -m rationality_jax.main --config=configs/train.py:method=flcp,model=tiny \
        --workdir=/tmp/flcp
    rationality_jax.train.train_and_evaluate(config, workdir)   # the same, as a library

A method is configuration (`rationality_jax.methods`): which parameters train
(a regex over parameter paths -> `optax.multi_transform`), which loss
(cross-entropy or FLYP's contrastive), which head. The loop:

  * mesh from ``config.mesh`` (e.g. ``[('data', -1), ('fsdp', 1)]``); the batch
    is split over every axis, the train state FSDP-sharded over ``fsdp``
    (`rationality_jax.sharding`); one `jax.jit` step with donated state and no
    host round-trip inside;
  * multi-host: ``config.distributed.initialize`` calls
    `jax.distributed.initialize()`; the same command runs on every host, each
    reads its own part of every global batch; only process 0 writes reports;
  * orbax `CheckpointManager` in ``<workdir>/checkpoints``: a save every
    ``checkpoint.every_steps`` and at the end, ``checkpoint.keep`` kept,
    resume from the newest with the input iterator and RNG state (a run killed
    and resumed ends with the same parameters, bitwise on CPU); SIGTERM saves
    the current step and exits with status 143;
  * a progress bar (step, loss, examples/s) and TensorBoard scalars in
    ``<workdir>/tensorboard`` every ``log_every`` steps, where a NaN/inf loss
    or gradient norm stops the run with the step and what to try;
  * at the end the evaluation head (`Method.eval_head`) is stored with the
    checkpoint and, with ``config.eval_split``, the accuracy on that split is
    reported. `load_for_evaluation` is the handoff to evaluation and
    explanations (contract in `rationality_jax.methods`).
"""

from __future__ import annotations

import functools
import json
import math
import os
import signal
import threading
import time
from typing import Any

from absl import logging
import grain
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import orbax.checkpoint as ocp

from rationality_jax import data
from rationality_jax import methods
from rationality_jax import models
from rationality_jax import optim
from rationality_jax import sharding
from rationality_jax.methods import wise_ft as wise_ft_lib
from rationality_jax.models import checkpoint as model_checkpoint

CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"
SIGTERM_EXIT = 143
ITEMS = ("state", "eval_head", "meta", "data")


# ============================================================ model ====


def model_config(config: ml_collections.ConfigDict) -> models.VLMConfig:
  """A randomly initialised CLIP-architecture VLMConfig from ``config.model`` sizes."""
  m = config.model
  vision = models.ViTConfig(
    image_size=m.image_size,
    patch_size=m.patch_size,
    width=m.width,
    depth=m.depth,
    num_heads=m.num_heads,
    mlp_dim=m.mlp_dim,
  )
  text = models.CLIPTextConfig(
    context_length=m.context_length,
    width=m.text_width,
    depth=m.text_depth,
    num_heads=m.text_heads,
    mlp_dim=m.text_mlp_dim,
  )
  return models.VLMConfig(
    family="clip",
    vision=vision,
    text=text,
    embed_dim=m.embed_dim,
    projection_bias=False,
  )


def build_model(config: ml_collections.ConfigDict, rng: jax.Array):
  """(module, host params): `models.load(config.model.path)` or a random init.

  The parameters are made on this process's first device (the same on every
  host: same file or same seed) and are sharded afterwards.
  """
  dtype = jnp.dtype(config.model.get("dtype", "float32"))
  if config.model.path:
    module, params = models.load(config.model.path, dtype=dtype)
  else:
    module = models.VisionLanguageModel(model_config(config), dtype=dtype)
    params = random_init(module)(rng)
  return module, jax.tree.map(np.asarray, jax.device_get(params))


@functools.lru_cache(maxsize=4)
def random_init(module: models.VisionLanguageModel):
  """Jitted rng -> params of `module` (compiled once per model config and process)."""
  cfg = module.config
  images = np.zeros(
    (1, cfg.vision.image_size, cfg.vision.image_size, 3), np.float32
  )
  ids = np.zeros((1, cfg.text.context_length), np.int32)
  return jax.jit(lambda rng: module.init(rng, images, ids)["params"])


def model_key(config: ml_collections.ConfigDict) -> dict:
  """What identifies the model for the zero-shot head cache."""
  if config.model.path:
    return {"path": os.path.abspath(config.model.path)}
  return {"random_init": config.model.to_dict(), "seed": config.seed}


# ============================================================= data ====


def input_source(config: ml_collections.ConfigDict, workdir: str, split: str):
  """(source, class names) of ``config.dataset`` (built first when ``build``)."""
  data_dir = config.dataset.data_dir or os.path.join(workdir, "data")
  kwargs = dict(config.dataset.builder_kwargs)
  if config.dataset.build:
    if jax.process_index() == 0:
      data.build(config.dataset.name, data_dir, **kwargs)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices("dataset built")
  source = data.get_source(config.dataset.name, split, data_dir, **kwargs)
  return source, data.class_names(config.dataset.name, source.class_names)


def train_iterator(config: ml_collections.ConfigDict, source):
  """This host's batches (host-local numpy), shuffled, repeating, checkpointable."""
  return data.make_iterator(
    source,
    config.pp_train,
    config.batch_size,
    mesh=None,
    seed=config.seed,
    shuffle=True,
    num_epochs=None,
    drop_remainder=True,
    num_threads=config.input_threads,
    prefetch=config.input_prefetch,
  )


def total_steps(config: ml_collections.ConfigDict, num_examples: int) -> int:
  if config.total_steps >= 0:
    return int(config.total_steps)
  return math.ceil(config.num_epochs * num_examples / config.batch_size)


# ====================================================== checkpoints ====


def checkpoint_manager(
  workdir: str, config: ml_collections.ConfigDict, read_only: bool = False
) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(
    save_interval_steps=max(int(config.checkpoint.every_steps), 1),
    max_to_keep=config.checkpoint.keep or None,
    enable_async_checkpointing=config.checkpoint.get("async_save", True),
    read_only=read_only,
  )
  return ocp.CheckpointManager(
    os.path.join(os.path.abspath(workdir), CHECKPOINTS),
    options=options,
    item_names=ITEMS,
    item_handlers={"data": grain.checkpoint.CheckpointHandler()},
  )


def to_host(tree: Any) -> Any:
  """Global arrays -> full numpy on every process."""
  if jax.process_count() > 1:
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.tree.map(np.asarray, jax.device_get(tree))


def save_checkpoint(
  manager, step: int, state, iterator, meta, eval_head_fn, force: bool = False
) -> bool:
  """Saves `state` (at `step`) when due or forced; the eval head is computed only then.

  `step` is the host's count, so deciding costs no device round-trip.
  """
  if not (force or manager.should_save(step)):
    return False
  args = ocp.args.Composite(
    state=ocp.args.StandardSave(state),
    eval_head=ocp.args.StandardSave(eval_head_fn(state)),
    meta=ocp.args.JsonSave(dict(meta, step=step)),
    data=grain.checkpoint.CheckpointSave(iterator.grain_iterator),
  )
  return manager.save(step, args=args, force=force)


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


# ============================================================ report ====


def summary_writer(logdir: str):
  """A tensorboardX SummaryWriter (scalars only, so torch is kept from loading with it)."""
  import sys

  if "tensorboardX" not in sys.modules and "torch" not in sys.modules:
    sys.modules["torch"] = (
      None  # tensorboardX imports torch only to accept its tensors.
    )
    try:
      pass
    finally:
      del sys.modules["torch"]
  from tensorboardX import SummaryWriter

  return SummaryWriter(logdir)


class Reporter:
  """Progress bar + TensorBoard scalars, on process 0 only."""

  def __init__(
    self, workdir: str, first_step: int, last_step: int, batch_size: int
  ):
    self.active = jax.process_index() == 0
    self.batch_size = batch_size
    self.last = (first_step, time.perf_counter())
    self.bar = self.writer = None
    if self.active:
      import tqdm

      self.bar = tqdm.tqdm(
        total=last_step,
        initial=first_step,
        desc="train",
        dynamic_ncols=True,
        mininterval=1.0,
      )
      self.writer = summary_writer(os.path.join(workdir, TENSORBOARD))

  def __call__(self, step: int, metrics: dict[str, float]) -> None:
    last_step, last_time = self.last
    now = time.perf_counter()
    metrics = dict(
      metrics,
      examples_per_second=(step - last_step)
      * self.batch_size
      / max(now - last_time, 1e-9),
    )
    self.last = (step, now)
    if not self.active:
      return
    for name, value in metrics.items():
      self.writer.add_scalar(f"train/{name}", value, step)
    self.writer.flush()
    self.bar.update(step - self.bar.n)
    self.bar.set_postfix(
      loss=f"{metrics['loss']:.4f}",
      ex_per_s=f"{metrics['examples_per_second']:.1f}",
    )

  def close(self):
    if self.active:
      self.bar.close()
      self.writer.close()


def check_finite(step: int, metrics: dict[str, float], config) -> None:
  """Stops the run on a NaN/inf loss or gradient norm with what to try."""
  bad = [k for k in ("loss", "grad_norm") if not np.isfinite(metrics[k])]
  if bad:
    raise FloatingPointError(
      f"{' and '.join(bad)} not finite at step {step} (loss {metrics['loss']}, gradient "
      f"norm {metrics['grad_norm']}; method {config.method}, lr {config.optim.lr}). The "
      "last checkpoint is unaffected: lower optim.lr, set optim.grad_clip_norm, or "
      "check the inputs' normalisation."
    )


class Preemption:
  """SIGTERM -> `requested` (single process); multi-host asks jax's preemption sync."""

  def __init__(self, manager):
    self.manager = manager
    self.received = False
    self.previous = None
    if (
      jax.process_count() == 1
      and threading.current_thread() is threading.main_thread()
    ):
      self.previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.received = True

  def requested(self, step: int) -> bool:
    if jax.process_count() > 1:
      return self.manager.reached_preemption(step)
    return self.received

  def restore(self):
    if self.previous is not None:
      signal.signal(signal.SIGTERM, self.previous)


# ============================================================= setup ====


def initialize_distributed(config: ml_collections.ConfigDict) -> None:
  """`jax.distributed.initialize` from ``config.distributed`` (auto-detected when empty)."""
  d = config.distributed
  if not d.initialize or jax.distributed.is_initialized():
    return
  if d.get("cpu_collectives"):
    jax.config.update("jax_cpu_collectives_implementation", d.cpu_collectives)
  kwargs = {}
  if d.coordinator_address:
    kwargs = dict(
      coordinator_address=d.coordinator_address,
      num_processes=d.num_processes,
      process_id=d.process_id,
    )
  jax.distributed.initialize(**kwargs)


def setup(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Everything the loop needs before the first step (used by training and WiSE-FT)."""
  method = methods.get(config.method)
  rng = jax.random.PRNGKey(config.seed)
  model_rng, head_rng, step_rng = jax.random.split(rng, 3)
  mesh = sharding.make_mesh([tuple(axis) for axis in config.mesh])
  module, params = build_model(config, model_rng)
  source, class_names = input_source(
    config, workdir, config.dataset.train_split
  )
  tokenizer = models.tokenizer(
    module.config.family,
    module.config.text.context_length
    if module.config.family == "clip"
    else None,
  )
  task = methods.heads.make_task(tokenizer, class_names, config.head.templates)
  task.update(method.extend_task(config, tokenizer, class_names))
  cache_dir = config.head.cache_dir or os.path.join(workdir, "zero_shot_heads")
  zero_shot = functools.partial(
    methods.heads.zero_shot_head,
    module,
    params,
    task,
    cache_dir,
    {
      "model": model_key(config),
      "dataset": config.dataset.name,
      "builder": config.dataset.builder_kwargs.to_dict(),
      "templates": config.head.templates,
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
    "dataset": config.dataset.name,
    "class_names": list(class_names),
    "templates": config.head.templates,
    "config": json.loads(config.to_json_best_effort()),
  }
  return dict(
    method=method,
    mesh=mesh,
    module=module,
    params=params,
    head=head,
    task=task,
    source=source,
    class_names=class_names,
    step_rng=step_rng,
    meta=meta,
  )


# ============================================================== loop ====


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains ``config.method`` in `workdir` (resuming if it has checkpoints).

  Returns:
    ``{'step', 'loss' (the last logged), 'losses' ([(step, loss)] logged by
    this invocation), 'accuracy' (on ``config.eval_split`` or None),
    'checkpoint_dir'}`` on every process.
  """
  initialize_distributed(config)
  if config.method == "wise_ft":
    return wise_ft(config, workdir)
  workdir = os.path.abspath(workdir)
  s = setup(config, workdir)
  method, mesh, module = s["method"], s["mesh"], s["module"]

  # ---------------------------------------------------- shardings & state
  trainable = {"params": s["params"], "head": s["head"]}
  labels = optim.trainable_labels(
    trainable, config.trainable or method.trainable(config, module.config)
  )
  steps = total_steps(config, len(s["source"]))
  schedule = optim.schedule(config.optim, steps)
  tx = optim.make_optimizer(config.optim, labels, steps)

  def init_state(trainable, rng):
    return {
      "step": jnp.zeros((), jnp.int32),
      **trainable,
      "opt_state": tx.init(trainable),
      "rng": rng,
    }

  abstract = jax.eval_shape(init_state, trainable, s["step_rng"])
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
    trainable, sharding.put(s["step_rng"], replicated)
  )
  # The class prompts are only read by eval_head (outside the step).
  task = sharding.put(
    {k: v for k, v in s["task"].items() if not k.startswith("prompt_")},
    replicated,
  )
  train_step = jax.jit(
    make_train_step(method, module, config, tx, labels, schedule),
    in_shardings=(state_shardings, sharding.batch_sharding(mesh), replicated),
    out_shardings=(state_shardings, replicated),
    donate_argnums=(0,),
  )

  # ----------------------------------------------------- resume if possible
  iterator = train_iterator(config, s["source"])
  manager = checkpoint_manager(workdir, config)
  meta = s["meta"]
  restored = manager.latest_step()
  if restored is not None:
    target = jax.tree.map(
      lambda a, sh: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=sh),
      abstract,
      state_shardings,
    )
    out = manager.restore(
      restored,
      args=ocp.args.Composite(
        state=ocp.args.StandardRestore(target),
        data=grain.checkpoint.CheckpointRestore(iterator.grain_iterator),
      ),
    )
    state = out["state"]
    logging.info("resumed %s from step %d", workdir, restored)

  def eval_head(state):
    params, head = state["params"], state["head"]
    if (
      jax.process_count() > 1
    ):  # computed on each host from the gathered weights
      params, head = to_host(params), to_host(head)
    return jax.tree.map(
      np.asarray,
      jax.device_get(method.eval_head(module, params, head, s["task"])),
    )

  # ------------------------------------------------------------ the loop
  first = int(jax.device_get(state["step"]))
  reporter = Reporter(workdir, first, steps, config.batch_size)
  preemption = Preemption(manager)
  batch_sharding = sharding.batch_sharding(mesh)
  metrics, history = None, []
  try:
    if first == 0:
      save_checkpoint(manager, 0, state, iterator, meta, eval_head)
    for step in range(first + 1, steps + 1):
      batch = sharding.global_batch(next(iterator), batch_sharding)
      state, step_metrics = train_step(state, batch, task)
      if step % config.log_every == 0 or step == steps:
        metrics = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        check_finite(step, metrics, config)
        reporter(step, metrics)
        history.append((step, metrics["loss"]))
      if preemption.requested(step):
        save_checkpoint(
          manager, step, state, iterator, meta, eval_head, force=True
        )
        manager.wait_until_finished()
        logging.warning(
          "SIGTERM: saved step %d in %s; exiting.", step, manager.directory
        )
        raise SystemExit(SIGTERM_EXIT)
      if step < steps:
        save_checkpoint(manager, step, state, iterator, meta, eval_head)
    if manager.latest_step() != steps:
      save_checkpoint(
        manager, steps, state, iterator, meta, eval_head, force=True
      )
    manager.wait_until_finished()
  finally:
    preemption.restore()
    reporter.close()

  accuracy = None
  if config.eval_split:
    accuracy = evaluate_accuracy(
      config, workdir, mesh, module, method, state, eval_head(state)
    )
    if jax.process_index() == 0:
      logging.info(
        "%s accuracy on %s: %.4f", config.method, config.eval_split, accuracy
      )
  result = {
    "step": steps,
    "loss": None if metrics is None else metrics["loss"],
    "losses": history,
    "accuracy": accuracy,
    "checkpoint_dir": str(manager.directory),
  }
  if jax.process_index() == 0:
    with open(os.path.join(workdir, "train_result.json"), "w") as f:
      json.dump(result, f, indent=1)
  manager.close()
  return result


# ======================================================== evaluation ====


def evaluate_accuracy(
  config, workdir, mesh, module, method, state, head
) -> float:
  """Top-1 accuracy of `method.classifier` on ``config.eval_split`` (all hosts together)."""
  source, _ = input_source(config, workdir, config.eval_split)
  batch_sharding = sharding.batch_sharding(mesh)
  replicated = sharding.replicated(mesh)
  head = sharding.put(head, replicated)

  @functools.partial(jax.jit, out_shardings=replicated)
  def correct(params, head, batch):
    logits = module.apply(
      {"params": params}, batch["image"], head, method=method.classifier
    )
    right = (jnp.argmax(logits, -1) == batch["label"]) & batch["valid"]
    return right.sum(), batch["valid"].sum()

  iterator = data.make_iterator(
    source,
    config.pp_eval,
    config.batch_size,
    mesh=None,
    shuffle=False,
    num_epochs=1,
    drop_remainder=False,
    num_threads=config.input_threads,
  )
  right = total = 0
  for local in iterator:
    r, n = correct(
      state["params"], head, sharding.global_batch(local, batch_sharding)
    )
    right, total = right + int(r), total + int(n)
  return right / max(total, 1)


def _reader(directory: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
    directory,
    item_names=ITEMS,
    options=ocp.CheckpointManagerOptions(read_only=True),
    item_handlers={
      "state": ocp.StandardCheckpointHandler(),
      "eval_head": ocp.StandardCheckpointHandler(),
      "meta": ocp.JsonCheckpointHandler(),
      "data": grain.checkpoint.CheckpointHandler(),
    },
  )


def read_checkpoint(
  workdir: str,
  step: int | None = None,
  items: tuple[str, ...] = ("state", "eval_head", "meta"),
) -> dict:
  """``{item: value, 'step': step}`` of the newest (or given) checkpoint, host numpy.

  Arrays are read whole onto this process's first device, whatever mesh or
  process count saved them (call it on every process of a multi-host job).
  """
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINTS)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  with _reader(directory) as manager:
    step = manager.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {directory}; train first.")
    metadata = manager.item_metadata(step)
    args = {}
    for item in items:
      if item == "meta":
        args[item] = ocp.args.JsonRestore()
      else:
        tree = getattr(metadata[item], "tree", metadata[item])
        args[item] = ocp.args.StandardRestore(
          jax.tree.map(
            lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
            tree,
          )
        )
    out = manager.restore(step, args=ocp.args.Composite(**args))
  out = {
    k: out[k] if k == "meta" else jax.tree.map(np.asarray, out[k])
    for k in items
  }
  return dict(out, step=step)


def load_for_evaluation(workdir: str, step: int | None = None) -> dict:
  """The trained model as evaluation needs it (see `rationality_jax.methods`).

  Returns:
    ``{'module', 'params', 'head', 'method', 'classifier', 'step', 'meta'}``:
    ``module.apply({'params': params}, images, head, method=classifier)`` ->
    logits [B, C]. Arrays are host numpy.
  """
  ckpt = read_checkpoint(workdir, step)
  meta = ckpt["meta"]
  module = models.VisionLanguageModel(
    model_checkpoint.config_from_dict(meta["model"])
  )
  method = meta["method"]
  classifier = methods.get(meta.get("finetuned_method", method)).classifier
  return {
    "module": module,
    "params": ckpt["state"]["params"],
    "head": ckpt["eval_head"],
    "method": method,
    "classifier": classifier,
    "step": ckpt["step"],
    "meta": meta,
  }


# =========================================================== WiSE-FT ====


def wise_ft(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Interpolates a finished run with its starting point at ``config.wise_ft.alphas``.

  Reads ``config.wise_ft.finetuned_workdir`` (its saved training config
  rebuilds the zero-shot end: same model file or seed, same head init), writes
  ``<workdir>/alpha_<alpha>/checkpoints/<step>/`` in the training layout, so
  `load_for_evaluation(<workdir>/alpha_<alpha>)` reads each like any model.

  Returns:
    {alpha: checkpoint directory}.
  """
  finetuned = read_checkpoint(
    config.wise_ft.finetuned_workdir, items=("state", "meta")
  )
  ft_config = ml_collections.ConfigDict(finetuned["meta"]["config"])
  s = setup(ft_config, config.wise_ft.finetuned_workdir)
  method, ft_state = s["method"], finetuned["state"]
  out = {}
  for alpha in config.wise_ft.alphas:
    params = wise_ft_lib.interpolate(s["params"], ft_state["params"], alpha)
    head = wise_ft_lib.interpolate(s["head"], ft_state["head"], alpha)
    eval_head = jax.tree.map(
      np.asarray,
      jax.device_get(method.eval_head(s["module"], params, head, s["task"])),
    )
    target = os.path.join(
      os.path.abspath(workdir), f"alpha_{alpha:g}", CHECKPOINTS
    )
    meta = dict(
      finetuned["meta"],
      method="wise_ft",
      finetuned_method=method.name,
      alpha=alpha,
      finetuned_workdir=os.path.abspath(config.wise_ft.finetuned_workdir),
    )
    with ocp.CheckpointManager(target, item_names=ITEMS[:3]) as manager:
      manager.save(
        finetuned["step"],
        args=ocp.args.Composite(
          state=ocp.args.StandardSave(
            {
              "step": np.int32(finetuned["step"]),
              "params": params,
              "head": head,
            }
          ),
          eval_head=ocp.args.StandardSave(eval_head),
          meta=ocp.args.JsonSave(dict(meta, step=finetuned["step"])),
        ),
      )
      manager.wait_until_finished()
    out[alpha] = target
  return out
