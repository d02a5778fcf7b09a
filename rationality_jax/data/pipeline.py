"""Input pipeline: grain over a random-access source -> global, sharded batches.

  it = make_iterator(source, "resize(256)|center_crop(224)|normalize('clip')",
                     batch_size=256, mesh=mesh, seed=0, shuffle=False, num_epochs=1)
  for batch in it:
      batch["image"]  # [B, 224, 224, 3] float32 jax.Array, sharded on 'data'
      batch["mask"]   # [B, 224, 224] uint8 jax.Array
      batch["label"]  # [B] int32; batch["index"] [B] int32 source index
      batch["valid"]  # [B] bool, False on padding (only when drop_remainder=False)
      batch["id"]     # [B / process_count] numpy str: this host's examples only
  state = it.get_state(); ...; it.set_state(state)   # resumes exactly

The order is a pure function of (seed, N, batch size, process count): global
position q in [0, N * num_epochs) is epoch e = q // N, example
perm_e[q % N] (perm_e a permutation seeded by (seed, e); identity without
shuffle). Global batch s holds positions [s * B, (s + 1) * B) and host h of P
reads positions s * B + j * P + h: hosts are disjoint and together cover every
example once per epoch. Each example is preprocessed with
`np.random.default_rng([seed, e, index])`, so its augmentation does not
depend on the host count or on where a run resumed.

With `drop_remainder=True` (default when shuffling) the last partial global
batch is dropped; with False it is filled with padding (`valid` False, a copy
of example 0) so every batch has the same shape. Fields whose shape varies
per example (`boxes`) are dropped; string fields stay host-local numpy.

Checkpointing: `get_state()`/`set_state()` are JSON-serialisable dicts;
`save(directory)`/`restore(directory)` write `process_<i>-of-<n>.json`, the
layout of grain's orbax handler; with orbax directly use
`grain.checkpoint.CheckpointSave(it.grain_iterator)` /
`CheckpointRestore(it.grain_iterator)` (restoring it restores `it`).
"""

from __future__ import annotations

from collections.abc import Sequence
import functools
import json
import math
import os
import sys
from typing import Any

from absl import flags
import grain
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import numpy as np

from rationality_jax import files
from rationality_jax.data import preprocess as pp

VARIABLE_FIELDS = ("boxes",)
# What a worker process hands over (recorded with the input state): whole
# batches. Before, single examples, whose saved positions count examples.
WORKER_UNIT = "batch"


@functools.lru_cache(maxsize=4)
def _permutation(seed: int, epoch: int, n: int) -> np.ndarray:
  """The shuffled order of `n` indices in `epoch` (cached: read per example)."""
  return np.random.default_rng([seed, epoch]).permutation(n)


class _HostStream:
  """Random access to this host's preprocessed examples, k -> example dict."""

  def __init__(
    self,
    source,
    preprocess: pp.Preprocess,
    seed,
    shuffle,
    num_epochs,
    process_index,
    process_count,
    length,
  ):
    self.source = source
    self.preprocess = preprocess
    self.seed = seed
    self.shuffle = shuffle
    self.num_epochs = num_epochs
    self.process_index = process_index
    self.process_count = process_count
    self.length = length
    self.n = len(source)
    names = getattr(source, "class_names", None)
    self.num_classes = len(names) if names is not None and len(names) else None

  def __len__(self):
    return self.length

  def _permutation(self, epoch: int) -> np.ndarray:
    return _permutation(self.seed, epoch, self.n)

  def position_to_index(self, q: int) -> tuple[int, int, bool]:
    """Global position -> (epoch, source index, valid)."""
    valid = self.num_epochs is None or q < self.n * self.num_epochs
    if not valid:
      return 0, 0, False
    epoch, r = divmod(q, self.n)
    return epoch, int(self._permutation(epoch)[r]) if self.shuffle else r, True

  def __getitem__(self, k: int) -> dict:
    q = int(k) * self.process_count + self.process_index
    epoch, index, valid = self.position_to_index(q)
    example = self.source[index]
    name = f"example {example.get('id', '?')!r} (source index {index})"
    label = example.get("label")
    if (
      self.num_classes is not None
      and label is not None
      and not 0 <= int(label) < self.num_classes
    ):
      raise ValueError(
        f"{name} has label {int(label)}, but the source has "
        f"{self.num_classes} classes (labels 0..{self.num_classes - 1})."
      )
    try:
      out = self.preprocess(
        example, np.random.default_rng([self.seed, epoch, index])
      )
    except Exception as e:
      e.add_note(f"While preprocessing {name} with {self.preprocess.spec!r}.")
      raise
    out = {key: v for key, v in out.items() if key not in VARIABLE_FIELDS}
    out["index"] = np.int32(index)
    out["valid"] = np.bool_(valid)
    if "label" in out:
      out["label"] = np.int32(out["label"])
    return out


def default_mesh(axis: str = "data") -> jax.sharding.Mesh:
  return jax.make_mesh((jax.device_count(),), (axis,))


class GlobalBatchIterator:
  """Iterator of global batches; see the module docstring."""

  def __init__(
    self, grain_iterator, num_steps, mesh, data_axis, process_count, config
  ):
    self.grain_iterator = grain_iterator
    self.num_steps = num_steps
    self.mesh = mesh
    self.data_axis = data_axis
    self.process_count = process_count
    self.config = config

  def __iter__(self):
    return self

  def __len__(self):
    if self.num_steps is None:
      raise TypeError("An iterator over infinite epochs has no length.")
    return self.num_steps

  def __next__(self) -> dict[str, Any]:
    local = next(self.grain_iterator)
    if self.mesh is None:
      return local
    sharding = NamedSharding(self.mesh, PartitionSpec(self.data_axis))
    out = {}
    for k, v in local.items():
      v = np.asarray(v)
      if v.dtype.kind in "USO":
        out[k] = v
      else:
        out[k] = jax.make_array_from_process_local_data(
          sharding, v, (v.shape[0] * self.process_count, *v.shape[1:])
        )
    return out

  def get_state(self) -> dict:
    return {"grain": self.grain_iterator.get_state(), "config": self.config}

  def close(self) -> None:
    """Ends the worker processes and frees their shared memory (if any)."""
    close = getattr(self.grain_iterator, "close", None)
    if close is not None:
      close()

  def worker_mismatch(self, state: dict) -> str | None:
    """Why `state` (from `get_state`) cannot restore here because it holds
    another number of input workers' states; None when the numbers agree."""
    saved_config = state.get("config") or {}
    saved = saved_config.get("num_workers", 0)
    mine = self.config.get("num_workers", 0)
    if saved != mine:
      return (
        f"the input state was saved with {saved} input worker processes, "
        f"this iterator has {mine}"
      )
    if saved_config.get("worker_unit") != self.config.get("worker_unit"):
      return (
        f"the input state of {saved} input worker processes was saved by a "
        "version whose workers handed over single examples; these make "
        "whole batches"
      )
    return None

  def set_state(self, state: dict) -> None:
    mismatch = self.worker_mismatch(state)
    if mismatch is not None:
      raise ValueError(
        f"{mismatch}: resume with the same number (evaluate.input_workers, "
        "train.input_workers)."
      )
    if state.get("config") != self.config:
      raise ValueError(
        f"Iterator state was saved for {state.get('config')}, this iterator "
        f"is {self.config}: the batches would differ."
      )
    self.grain_iterator.set_state(state["grain"])

  def save(self, directory) -> str:
    """Writes this host's state as <directory>/process_<i>-of-<n>.json."""
    path = os.path.join(
      directory,
      f"process_{self.config['process_index']}-of-{self.config['process_count']}.json",
    )
    files.write_json(path, self.get_state())
    return path

  def restore(self, directory) -> None:
    path = os.path.join(
      directory,
      f"process_{self.config['process_index']}-of-{self.config['process_count']}.json",
    )
    with open(path) as f:
      self.set_state(json.load(f))


def _batch_mesh(batch_size, mesh, data_axis, process_index, process_count):
  """The mesh batches are sharded on (None: host-local numpy batches), after
  checking that `batch_size` splits over the processes and the mesh axis."""
  if batch_size % process_count:
    raise ValueError(
      f"batch_size {batch_size} must be divisible by the process count {process_count}."
    )
  if mesh == "default":
    mesh = default_mesh(data_axis)
  if mesh is not None and (process_index, process_count) != (
    jax.process_index(),
    jax.process_count(),
  ):
    raise ValueError(
      f"Simulated sharding (process {process_index} of {process_count}, jax "
      f"has {jax.process_index()} of "
      f"{jax.process_count()}) cannot build global arrays: pass mesh=None for "
      "host-local numpy batches."
    )
  if mesh is not None and batch_size % mesh.shape[data_axis]:
    raise ValueError(
      f"batch_size {batch_size} must be divisible by the '{data_axis}' mesh "
      f"axis ({mesh.shape[data_axis]})."
    )
  return mesh


def _grain_dataset(stream, local_batch, num_threads, prefetch, num_workers):
  """This host's batches of `stream` as a grain dataset: preprocessed in
  `num_threads` threads, or made whole in `num_workers` worker processes
  (see `make_iterator`)."""
  if num_workers < 0:
    raise ValueError(f"num_workers must be >= 0, got {num_workers}.")
  if num_workers:
    if not flags.FLAGS.is_parsed():
      # grain's workers read grain's absl flags; outside an absl app (tests,
      # notebooks) they keep their defaults.
      flags.FLAGS.mark_as_parsed()
    # Whole batches are made in the workers (written straight into shared
    # memory) and handed over in order: the main process receives one
    # array per field and batch instead of one per field and example.
    # Each of a worker's threads makes one batch at a time.
    per_worker = max(1, prefetch // local_batch // num_workers)
    return (
      grain.MapDataset.source(stream)
      .batch(local_batch, drop_remainder=True)
      .to_iter_dataset(
        grain.ReadOptions(
          num_threads=num_threads,
          prefetch_buffer_size=max(num_threads, per_worker),
        )
      )
      .mp_prefetch(
        grain.MultiprocessingOptions(
          num_workers=num_workers, per_worker_buffer_size=per_worker
        )
      )
    )
  return (
    grain.MapDataset.source(stream)
    .to_iter_dataset(
      grain.ReadOptions(
        num_threads=num_threads, prefetch_buffer_size=max(1, prefetch)
      )
    )
    .batch(local_batch, drop_remainder=True)
  )


def _num_steps(n, num_epochs, batch_size, drop_remainder) -> int | None:
  """Global batches in `num_epochs` epochs of `n` examples (None: forever);
  the last partial batch counts unless `drop_remainder`."""
  if num_epochs is None:
    return None
  total = n * num_epochs
  return (
    total // batch_size if drop_remainder else math.ceil(total / batch_size)
  )


def make_iterator(
  source,
  preprocess: str | Sequence[str] | pp.Preprocess,
  batch_size: int,
  mesh: jax.sharding.Mesh | str | None = "default",
  seed: int = 0,
  shuffle: bool = True,
  num_epochs: int | None = None,
  drop_remainder: bool | None = None,
  process_index: int | None = None,
  process_count: int | None = None,
  data_axis: str = "data",
  num_threads: int = 4,
  prefetch: int = 64,
  num_workers: int = 0,
) -> GlobalBatchIterator:
  """Global batches of `batch_size` from `source` (len + __getitem__ -> dict).

  `mesh`: batches become jax.Arrays sharded on `data_axis` ('default': one
  axis over all devices; None: host-local numpy batches). `process_index` /
  `process_count` default to jax's. `num_epochs=None` repeats forever.

  Reading, decoding and preprocessing run in `num_threads` threads; with
  `num_workers` > 0 in that many worker processes (`grain`'s `mp_prefetch`,
  each with `num_threads` threads), for hosts whose cores the threads cannot
  fill (Python holds the GIL between the image operations). Worker k of W
  makes this host's batches k, k + W, ... whole, in shared memory, and they
  are taken in order, so the batches are the same for any `num_workers`; a
  saved state restores only into an iterator with the same `num_workers`.
  `prefetch`: examples prepared ahead (with workers: whole batches, at least
  one per worker).
  """
  process_index = (
    jax.process_index() if process_index is None else process_index
  )
  process_count = (
    jax.process_count() if process_count is None else process_count
  )
  mesh = _batch_mesh(batch_size, mesh, data_axis, process_index, process_count)
  drop_remainder = shuffle if drop_remainder is None else drop_remainder
  n = len(source)
  if n == 0:
    raise ValueError("The source is empty.")
  local_batch = batch_size // process_count
  num_steps = _num_steps(n, num_epochs, batch_size, drop_remainder)
  length = (
    sys.maxsize // process_count
    if num_steps is None
    else num_steps * local_batch
  )
  preprocess = pp.parse(preprocess)
  stream = _HostStream(
    source,
    preprocess,
    seed,
    shuffle,
    num_epochs,
    process_index,
    process_count,
    length,
  )
  ds = _grain_dataset(stream, local_batch, num_threads, prefetch, num_workers)
  config = {
    "num_examples": n,
    "batch_size": batch_size,
    "seed": seed,
    "shuffle": shuffle,
    "num_epochs": num_epochs,
    "drop_remainder": drop_remainder,
    "process_index": process_index,
    "process_count": process_count,
    "preprocess": preprocess.spec,
  }
  if num_workers:  # the saved state holds one entry per worker, in batches
    config["num_workers"] = num_workers
    config["worker_unit"] = WORKER_UNIT
  return GlobalBatchIterator(
    iter(ds), num_steps, mesh, data_axis, process_count, config
  )
