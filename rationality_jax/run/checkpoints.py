"""The checkpoint contract between training and evaluation.

A training workdir holds orbax checkpoints ``<workdir>/checkpoints/<step>/``:

  state      {'step', 'params' (the model), 'head' (the training head),
              'opt_state', 'rng'} - for resuming
  eval_head  the head the method's classifier takes (`Method.eval_head`)
  meta       JSON: method, step, model config (`models.checkpoint.config_to_dict`),
             class names, dataset, templates, the run config, its fingerprint
  data       the input iterator's state (one JSON file per process)

`load_trained(workdir)` reads it back as a `Trained` model, the one object
evaluation and explanations take; `zero_shot(...)` builds the same object for
a plain checkpoint without any training run. A non-finite state is never
saved (`save` refuses it, naming the first bad leaf).
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
from typing import Any

import grain
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from rationality_jax import methods
from rationality_jax import models
from rationality_jax.models import checkpoint as model_checkpoint
from rationality_jax.run import optim

CHECKPOINTS = "checkpoints"
ITEMS = ("state", "eval_head", "meta", "data")


@dataclasses.dataclass
class Trained:
  """A model ready to evaluate.

  ``module.apply({'params': params}, images, head, method=classifier)`` are
  its logits [B, C]. Arrays are host numpy.
  """

  module: models.VisionLanguageModel
  params: Any
  head: Any
  method: str
  classifier: Any
  step: int
  meta: dict


def manager(
  workdir: str, config: ml_collections.ConfigDict
) -> ocp.CheckpointManager:
  """The training run's CheckpointManager (``config.train.checkpoint``)."""
  c = config.train.checkpoint
  options = ocp.CheckpointManagerOptions(
    save_interval_steps=int(c.every_steps),
    max_to_keep=c.keep or None,
    enable_async_checkpointing=c.async_save,
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


@jax.jit
def _finite_flags(leaves: list) -> jax.Array:
  """[len(leaves)] bool: each leaf has no NaN/inf (one program, one sync)."""
  return jnp.stack([jnp.all(jnp.isfinite(x)) for x in leaves])


def first_nonfinite(tree: Any) -> str | None:
  """Path of the first floating leaf holding NaN/inf, or None.

  One jitted reduction over every leaf, whatever their shardings (a program
  per leaf would mean a collective per leaf on a sharded state).
  """
  floating = [
    (name, x)
    for name, x in optim.named_leaves(tree)
    if jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating)
  ]
  if not floating:
    return None
  flags = np.asarray(jax.device_get(_finite_flags([x for _, x in floating])))
  bad = np.flatnonzero(~flags)
  return floating[bad[0]][0] if bad.size else None


class NonFiniteStateError(FloatingPointError):
  """The train state holds NaN/inf: not saved."""


def save(
  mgr: ocp.CheckpointManager,
  step: int,
  state,
  iterator,
  meta: dict,
  eval_head_fn,
  force: bool = False,
) -> bool:
  """Saves `state` at `step` when due (or forced); a non-finite state never.

  `step` is the host's count, so deciding costs no device round-trip; the
  finite check and the evaluation head run only when a save is due.
  `iterator`: the input to resume (its state and worker record are saved),
  or None for a state no input made (WiSE-FT's interpolation).
  """
  if not (force or mgr.should_save(step)):
    return False
  bad = first_nonfinite({"params": state["params"], "head": state["head"]})
  if bad is not None:
    raise NonFiniteStateError(
      f"{bad} is not finite at step {step}: not saved; the last checkpoint "
      f"in {mgr.directory} (step {mgr.latest_step()}) is unaffected. Lower "
      "train.optim.lr, set train.optim.grad_clip_norm, or check the inputs."
    )
  items = {
    "state": ocp.args.StandardSave(state),
    "eval_head": ocp.args.StandardSave(eval_head_fn(state)),
  }
  if iterator is not None:
    meta = dict(
      meta,
      input={
        "num_workers": iterator.config.get("num_workers", 0),
        "worker_unit": iterator.config.get("worker_unit"),
      },
    )
    items["data"] = grain.checkpoint.CheckpointSave(iterator.grain_iterator)
  items["meta"] = ocp.args.JsonSave(dict(meta, step=step))
  return mgr.save(step, args=ocp.args.Composite(**items), force=force)


def remove_temporary(directory) -> None:
  """Deletes orbax's unfinished ``*.orbax-checkpoint-tmp*`` steps (process 0)."""
  if jax.process_index() != 0:
    return
  for path in glob.glob(
    os.path.join(os.fspath(directory), "*orbax-checkpoint-tmp*")
  ):
    shutil.rmtree(path, ignore_errors=True)


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


def latest_step(workdir: str) -> int | None:
  """The newest checkpoint's step of a training run directory (None: none)."""
  directory = os.path.join(os.path.abspath(workdir), CHECKPOINTS)
  if not os.path.isdir(directory):
    return None
  with _reader(directory) as mgr:
    return mgr.latest_step()


def read(
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
  if not os.path.isdir(directory):
    raise FileNotFoundError(
      f"no training run in {workdir} (no {CHECKPOINTS}/): train first."
    )
  with _reader(directory) as mgr:
    step = mgr.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f"no checkpoint in {directory}; train first.")
    metadata = mgr.item_metadata(step)
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
    out = mgr.restore(step, args=ocp.args.Composite(**args))
  out = {
    k: out[k] if k == "meta" else jax.tree.map(np.asarray, out[k])
    for k in items
  }
  return dict(out, step=step)


def load_trained(workdir: str, step: int | None = None) -> Trained:
  """The trained model of a finished (or saved) training run."""
  ckpt = read(workdir, step)
  meta = ckpt["meta"]
  module = models.VisionLanguageModel(
    model_checkpoint.config_from_dict(meta["model"])
  )
  method = meta["method"]
  classifier = methods.METHODS[meta.get("finetuned_method", method)].classifier
  return Trained(
    module=module,
    params=ckpt["state"]["params"],
    head=ckpt["eval_head"],
    method=method,
    classifier=classifier,
    step=int(ckpt["step"]),
    meta=meta,
  )


def zero_shot(module, params, head: dict, meta: dict) -> Trained:
  """A checkpoint's zero-shot model (nothing trained): the ZS classifier."""
  return Trained(
    module=module,
    params=params,
    head=head,
    method="zs",
    classifier=methods.METHODS["zs"].classifier,
    step=0,
    meta=meta,
  )
