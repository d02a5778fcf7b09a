"""Device mesh from config and the shardings of batches and train state.

  mesh = sharding.make_mesh([("data", -1), ("fsdp", 1)])   # -1: the remaining devices
  batch_sharding = sharding.batch_sharding(mesh)           # examples over every axis
  state_shardings = sharding.fsdp_shardings(jax.eval_shape(init), mesh, "fsdp")

Data parallelism: every mesh axis splits the batch (FSDP is data parallel
too), so a global batch of B examples puts B / num_devices on each device.
FSDP-style parameter sharding: each array of the train state (parameters,
optimiser moments) is split along its largest dimension divisible by the size
of the ``fsdp`` axis and replicated over the other axes; arrays with no such
dimension (scalars, small biases) are replicated. XLA inserts the all-gathers
before use and the reduce-scatters of the gradients (`jax.jit` with shardings,
no `pmap`). With an ``fsdp`` axis of size 1 this is plain data parallelism.
"""

from __future__ import annotations

from collections.abc import Sequence
import math
from typing import Any

import jax
from jax.experimental import mesh_utils
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec
import numpy as np
from orbax.checkpoint import multihost


def make_mesh(
  axes: Sequence[tuple[str, int]], devices: Sequence[Any] | None = None
) -> Mesh:
  """A mesh over all (or the given) devices with named axes.

  Args:
    axes: ``[(name, size), ...]`` in major-to-minor order; at most one size may
      be -1 (all devices not used by the other axes).
    devices: defaults to ``jax.devices()`` (every process's devices).

  Returns:
    `jax.sharding.Mesh` whose axis sizes multiply to the device count.
  """
  devices = list(jax.devices() if devices is None else devices)
  names = tuple(name for name, _ in axes)
  sizes = [int(size) for _, size in axes]
  if len(set(names)) != len(names):
    raise ValueError(f"mesh axis names must be unique, got {names}.")
  if sizes.count(-1) > 1:
    raise ValueError(
      f"at most one mesh axis may have size -1, got {list(axes)}."
    )
  known = math.prod(s for s in sizes if s != -1)
  if -1 in sizes:
    if len(devices) % known:
      raise ValueError(
        f"mesh {list(axes)}: {len(devices)} devices are not divisible "
        f"by the fixed axes' product {known}."
      )
    sizes[sizes.index(-1)] = len(devices) // known
  if math.prod(sizes) != len(devices):
    raise ValueError(
      f"mesh {list(axes)} needs {math.prod(sizes)} devices, there are "
      f"{len(devices)}; use -1 for one axis to take the rest."
    )
  try:
    device_array = mesh_utils.create_device_mesh(sizes, devices)
  except (AssertionError, NotImplementedError, ValueError):
    device_array = np.asarray(devices).reshape(sizes)
  return Mesh(device_array, names)


def local_mesh(axis: str = "data") -> Mesh:
  """One axis over this process's devices (a process's own evaluation shard)."""
  return Mesh(np.asarray(jax.local_devices()), (axis,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (example) axis split over every mesh axis; other axes whole."""
  return NamedSharding(mesh, PartitionSpec(mesh.axis_names))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, PartitionSpec())


def fsdp_spec(shape: Sequence[int], axis_size: int, axis: str) -> PartitionSpec:
  """PartitionSpec splitting the largest dimension divisible by `axis_size`.

  Ties go to the last such dimension; nothing divisible (or axis_size 1) ->
  replicated.
  """
  if axis_size <= 1:
    return PartitionSpec()
  best = None
  for i, n in enumerate(shape):
    if n % axis_size == 0 and (best is None or n >= shape[best]):
      best = i
  if best is None:
    return PartitionSpec()
  spec = [None] * len(shape)
  spec[best] = axis
  return PartitionSpec(*spec)


def fsdp_shardings(tree: Any, mesh: Mesh, axis: str | None = "fsdp") -> Any:
  """NamedSharding per leaf of `tree` (arrays or `jax.ShapeDtypeStruct`s).

  `axis` None or absent from the mesh: everything replicated.
  """
  size = mesh.shape[axis] if axis in mesh.axis_names else 1

  def one(leaf):
    return NamedSharding(mesh, fsdp_spec(np.shape(leaf), size, axis))

  return jax.tree.map(one, tree)


def global_batch(
  local: dict[str, np.ndarray], sharding: NamedSharding
) -> dict[str, jax.Array]:
  """This process's examples -> global arrays on `sharding` (strings dropped).

  local: ``{name: [B / process_count, ...]}`` numpy. Returns ``{name: [B, ...]}``.
  """
  out = {}
  for name, value in local.items():
    value = np.asarray(value)
    if value.dtype.kind in "USO":
      continue
    shape = (value.shape[0] * jax.process_count(), *value.shape[1:])
    out[name] = jax.make_array_from_process_local_data(sharding, value, shape)
  return out


def put(tree: Any, shardings: Any) -> Any:
  """Host values (the same on every process) -> global arrays with `shardings`.

  `shardings`: one sharding for every leaf, or a tree matching `tree`. Each
  process fills only its own devices' shards.
  """
  if isinstance(shardings, jax.sharding.Sharding):
    shardings = jax.tree.map(lambda _: shardings, tree)

  def one(value, target):
    value = np.asarray(value)
    return jax.make_array_from_callback(
      value.shape, target, lambda index: value[index]
    )

  return jax.tree.map(one, tree, shardings)


def initialize_distributed(options) -> None:
  """`jax.distributed.initialize` from a config's ``distributed`` section.

  ``initialize`` False: single process. ``coordinator_address`` empty:
  auto-detected (TPU pods, SLURM); else the address, ``num_processes`` and
  ``process_id`` given. ``cpu_collectives`` ('gloo', 'mpi') for CPU hosts.
  """
  if not options.initialize or jax.distributed.is_initialized():
    return
  if options.get("cpu_collectives"):
    jax.config.update(
      "jax_cpu_collectives_implementation", options.cpu_collectives
    )
  kwargs = {}
  if options.coordinator_address:
    kwargs = dict(
      coordinator_address=options.coordinator_address,
      num_processes=options.num_processes,
      process_id=options.process_id,
    )
  jax.distributed.initialize(**kwargs)
  global _BARRIER_TIMEOUT_S
  _BARRIER_TIMEOUT_S = int(options.get("barrier_timeout_s", _BARRIER_TIMEOUT_S))


# A process waits at a barrier while its peers finish their shard of the work
# (building a dataset, evaluating): hours on a real run.
_BARRIER_TIMEOUT_S = 24 * 3600
_BARRIERS_PASSED = 0


def barrier(name: str, timeout_s: int | None = None) -> None:
  """Wait until every JAX process reaches the barrier `name` (no-op alone).

  Host-side, through the coordination service's key-value store: no device
  collective, so a peer that is slow to arrive (compiling, building data)
  is waited for up to ``timeout_s`` (config ``distributed.barrier_timeout_s``)
  instead of failing the CPU collectives' 30 s context set-up.
  """
  if jax.process_count() == 1:
    return
  global _BARRIERS_PASSED
  _BARRIERS_PASSED += 1  # the same count on every process: names stay unique
  timeout_s = timeout_s or _BARRIER_TIMEOUT_S
  multihost.get_barrier_sync_fn()(
    key=f"{name} #{_BARRIERS_PASSED}", timeout_ms=timeout_s * 1000
  )
