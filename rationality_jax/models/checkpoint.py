"""What a model spec names, loading it, saving converted params, fingerprints.

A *spec* is one of

* a checkpoint file: ``*.pt`` / ``*.pth`` / ``*.bin`` / ``*.safetensors`` in a
  registered single-file layout (OpenAI CLIP, ALBEF, BLIP);
* a directory: Hugging Face (``config.json`` + ``model.safetensors``, a
  sharded index or ``pytorch_model.bin``) or written by `save`
  (``rationality_jax_model.json`` + orbax params);
* a hub id a family lists (``openai/clip-vit-base-patch16``), read from
  huggingface_hub's cache (`rationality_jax.models.hub`);
* ``random:<arch>``: a randomly initialised architecture a family lists
  (``random:tiny``, ``random:demo``, ``random:b16``, ``random:b32``).

Which layout a state dict is in, and how it converts, is the families'
business (`rationality_jax.models.families`). ``.pt``/``.pth``/``.bin`` files
that are not TorchScript archives need PyTorch, imported only then.
"""

from __future__ import annotations

from collections.abc import Mapping
import dataclasses
import functools
import hashlib
import json
import os
import re

import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax.models import convert
from rationality_jax.models import families
from rationality_jax.models import hub
from rationality_jax.models import readers
from rationality_jax.models.convert import CheckpointError
from rationality_jax.models.positions import resize_position_embedding
from rationality_jax.models.text import BertConfig
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import VLMConfig

OWN_CONFIG = "rationality_jax_model.json"
RANDOM = "random:"
FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors")
# Files of a directory that `identity` fingerprints (paths relative to it).
_WEIGHT_OR_CONFIG = re.compile(
  r"^(config\.json|pytorch_model\.bin|[^/]*\.safetensors(\.index\.json)?|"
  + re.escape(OWN_CONFIG)
  + r"|params/.*)$"
)
MIB = 1 << 20
# ``text_kind`` in the saved JSON: which text tower the config describes.
TEXT_KINDS = {"clip": CLIPTextConfig, "bert": BertConfig}


@dataclasses.dataclass(frozen=True)
class _Source:
  """A resolved spec: kind 'random' (name = arch), 'saved', 'hf' (a HF
  directory, from a path or a hub snapshot), or 'file'."""

  kind: str
  name: str
  hub_id: str | None = None


def _accepted_forms() -> str:
  return (
    f"a checkpoint file ({', '.join('*' + s for s in FILE_SUFFIXES)}); a "
    f"directory (Hugging Face, with config.json, or written by models.save, "
    f"with {OWN_CONFIG}); a hub id ({', '.join(sorted(families.HUB_IDS))}); "
    f"or random:<arch> with arch in {sorted(families.ARCHITECTURES)}"
  )


def _resolve(spec, download: bool) -> _Source:
  if not isinstance(spec, (str, os.PathLike)):
    raise TypeError(
      f"model spec must be a str or path, got {type(spec).__name__}."
    )
  spec = os.fspath(spec)
  if spec.startswith(RANDOM):
    arch = spec[len(RANDOM) :]
    if arch not in families.ARCHITECTURES:
      raise CheckpointError(
        f"unknown architecture in {spec!r}; random:<arch> takes one of "
        f"{sorted(families.ARCHITECTURES)}."
      )
    return _Source("random", arch)
  if os.path.isdir(spec):
    if os.path.exists(os.path.join(spec, OWN_CONFIG)):
      return _Source("saved", os.path.abspath(spec))
    if os.path.exists(os.path.join(spec, "config.json")):
      return _Source("hf", os.path.abspath(spec))
    raise CheckpointError(
      f"unknown checkpoint format at {spec!r}: a directory without "
      f"config.json (Hugging Face) or {OWN_CONFIG} (models.save)."
    )
  if os.path.isfile(spec):
    if not spec.endswith(FILE_SUFFIXES):
      raise CheckpointError(
        f"unknown checkpoint format at {spec!r}: expected one of "
        f"{', '.join(FILE_SUFFIXES)}."
      )
    return _Source("file", os.path.abspath(spec))
  if spec in families.HUB_IDS:
    return _Source("hf", hub.snapshot(spec, download), hub_id=spec)
  what = (
    "it is empty"
    if not spec
    else "no such file or directory, and not a known hub id or random:<arch>"
  )
  raise CheckpointError(
    f"cannot load model spec {spec!r}: {what}. Expected {_accepted_forms()}."
  )


def _with_image_size(config: VLMConfig, image_size: int | None) -> VLMConfig:
  if image_size is None:
    return config
  return dataclasses.replace(
    config, vision=dataclasses.replace(config.vision, image_size=image_size)
  )


def _check_family(config: VLMConfig, where: str) -> VLMConfig:
  if config.family not in families.FAMILIES:
    raise CheckpointError(
      f"{where}: model family {config.family!r} is not registered "
      f"({sorted(families.FAMILIES)})."
    )
  return config


def _refuse_temp(temp: float | None, where: str):
  if temp is not None:
    raise CheckpointError(
      f"temp={temp} only applies to layouts that store no temperature; "
      f"{where} stores its own."
    )


def load(
  spec: str | os.PathLike,
  *,
  image_size: int | None = None,
  dtype: jnp.dtype = jnp.float32,
  seed: int = 0,
  temp: float | None = None,
) -> tuple[VisionLanguageModel, dict]:
  """Load a CLIP / ALBEF / BLIP model as a Flax module and its params.

  Args:
    spec: a checkpoint file, a directory, a hub id or ``random:<arch>`` (see
      the module docstring).
    image_size: None: the checkpoint's own; else the patch position
      embeddings are resized with PyTorch's bicubic (ALBEF/BLIP's
      ``interpolate_pos_embed``).
    dtype: compute dtype of the module (params stay float32).
    seed: the random init's seed (``random:<arch>`` only).
    temp: the temperature of a layout that stores none (HF
      ``BlipForImageTextRetrieval``; default 0.07, BLIP's initial value).

  Returns:
    (module, params): call ``module.apply({'params': params}, images, ids)``.

  Raises:
    CheckpointError: an unknown spec or format, an unreadable file, a NaN or
      inf weight, or a strict-conversion failure (the message names the key,
      the file and both shapes).
    ImportError: a (non-TorchScript) PyTorch file without torch installed.
  """
  source = _resolve(spec, download=True)
  if source.kind == "random":
    config = _with_image_size(families.ARCHITECTURES[source.name], image_size)
    return VisionLanguageModel(config, dtype=dtype), random_init(config)(
      jax.random.key(seed)
    )
  if source.kind == "saved":
    _refuse_temp(temp, source.name)
    return _restore(source.name, dtype, image_size)
  if source.kind == "hf":
    state = readers.read_hf_weights(source.name)
  else:
    state = readers.read_file(source.name)
  layout = families.detect_layout(state, source.name)
  if layout.hf_config_fields is None:
    hf_config = None
  elif source.kind == "hf":
    hf_config = readers.read_hf_config(source.name, layout.hf_config_fields)
  else:
    raise CheckpointError(
      f"{source.name} is in a Hugging Face layout ({layout.name}); load the "
      "directory with its config.json instead."
    )
  if layout.stores_temperature:
    _refuse_temp(temp, f"{source.name} ({layout.name})")
  config = _with_image_size(layout.config(state, hf_config), image_size)
  params = convert.convert_state_dict(
    state, layout, config, temp=temp, source=source.name
  )
  return VisionLanguageModel(config, dtype=dtype), params


@functools.lru_cache(maxsize=4)
def random_init(config: VLMConfig):
  """Jitted ``key -> params`` of `VisionLanguageModel(config)` (compiled once)."""
  module = VisionLanguageModel(config)
  size = config.vision.image_size
  images = jnp.zeros((1, size, size, 3), jnp.float32)
  ids = jnp.zeros((1, 4), jnp.int32)
  return jax.jit(lambda key: module.init(key, images, ids)["params"])


# ------------------------------------------------------------- saving ----


def config_to_dict(config: VLMConfig) -> dict:
  """JSON-able dict of a VLMConfig (inverse: `config_from_dict`)."""
  out = dataclasses.asdict(config)
  out["text_kind"] = next(
    kind for kind, cls in TEXT_KINDS.items() if isinstance(config.text, cls)
  )
  return out


def config_from_dict(data: Mapping) -> VLMConfig:
  data = dict(data)
  data["vision"] = ViTConfig(**data["vision"])
  data["text"] = TEXT_KINDS[data.pop("text_kind")](**data["text"])
  if data.get("temp_range") is not None:
    data["temp_range"] = tuple(data["temp_range"])
  return VLMConfig(**data)


def save(
  directory: str | os.PathLike, module: VisionLanguageModel, params: dict
) -> None:
  """Write ``params`` with orbax and the module config as JSON into ``directory``.

  ``load(directory)`` gives them back. The directory must not exist yet.
  """
  import orbax.checkpoint as ocp

  directory = os.path.abspath(os.fspath(directory))
  with ocp.StandardCheckpointer() as checkpointer:
    checkpointer.save(os.path.join(directory, "params"), params)
  with open(os.path.join(directory, OWN_CONFIG), "w") as f:
    json.dump(config_to_dict(module.config), f, indent=1)


def _restore(directory: str, dtype, image_size: int | None):
  import orbax.checkpoint as ocp

  with open(os.path.join(directory, OWN_CONFIG)) as f:
    config = _check_family(config_from_dict(json.load(f)), directory)
  # Every process reads the (replicated) weights on its own: no barriers.
  own = ocp.options.MultiprocessingOptions(
    primary_host=jax.process_index(), active_processes={jax.process_index()}
  )
  with ocp.StandardCheckpointer(multiprocessing_options=own) as checkpointer:
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    target = jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=local),
      convert.expected_params(config),
    )
    params = checkpointer.restore(os.path.join(directory, "params"), target)
  for path, leaf in jax.tree.leaves_with_path(params):
    if not np.isfinite(np.asarray(leaf)).all():
      raise CheckpointError(
        f"param {jax.tree_util.keystr(path)} in {directory} holds NaN or inf "
        "values; refusing to load it (a diverged run?)."
      )
  if image_size is not None and image_size != config.vision.image_size:
    config = _with_image_size(config, image_size)
    pos = resize_position_embedding(
      np.asarray(params["vision"]["pos_embedding"]), config.vision.grid_size
    )
    params = {
      **params,
      "vision": {**params["vision"], "pos_embedding": jnp.asarray(pos)},
    }
  return VisionLanguageModel(config, dtype=dtype), params


# -------------------------------------------------------- fingerprints ----


def _file_fingerprint(path: str) -> dict:
  stat = os.stat(path)
  digest = hashlib.sha256()
  with open(path, "rb") as f:
    if stat.st_size <= 2 * MIB:
      digest.update(f.read())
      hashed = "whole"
    else:
      digest.update(f.read(MIB))
      f.seek(-MIB, os.SEEK_END)
      digest.update(f.read(MIB))
      hashed = "first_and_last_mib"
  return {
    "size": stat.st_size,
    "mtime_ns": stat.st_mtime_ns,
    "sha256": digest.hexdigest(),
    "hashed": hashed,
  }


def _directory_fingerprint(directory: str) -> dict:
  files = {}
  for parent, _, names in os.walk(directory):
    for name in names:
      path = os.path.join(parent, name)
      relative = os.path.relpath(path, directory).replace(os.sep, "/")
      if _WEIGHT_OR_CONFIG.match(relative):
        files[relative] = _file_fingerprint(path)
  return dict(sorted(files.items()))


def identity(spec: str | os.PathLike, *, seed: int = 0) -> dict:
  """A cheap JSON-able fingerprint of what ``load(spec, seed=seed)`` loads.

  * a file: ``{'kind': 'file', 'path': absolute path, 'size', 'mtime_ns',
    'sha256', 'hashed'}``; the SHA-256 is of the whole file up to 2 MiB,
    else of its first and last MiB (``hashed``: ``'whole'`` or
    ``'first_and_last_mib'``), so a multi-GB checkpoint costs two reads;
  * a directory: ``{'kind': 'directory', 'path', 'files': {relative path:
    the file fields above}}`` over its weight and config files
    (``config.json``, ``*.safetensors``, ``*.safetensors.index.json``,
    ``pytorch_model.bin``, ``rationality_jax_model.json``, ``params/**``);
  * a hub id: ``{'kind': 'hub', 'hub_id', 'revision': the cached snapshot's
    commit, 'path', 'files'}`` (the cache only: nothing is downloaded);
  * ``random:<arch>``: ``{'kind': 'random', 'arch', 'seed'}``.

  Raises:
    CheckpointError: as `load` for an unknown spec or an uncached hub id.
  """
  source = _resolve(spec, download=False)
  if source.kind == "random":
    return {"kind": "random", "arch": source.name, "seed": seed}
  if source.kind == "file":
    return {"kind": "file", "path": source.name} | _file_fingerprint(
      source.name
    )
  files = {"path": source.name, "files": _directory_fingerprint(source.name)}
  if source.hub_id is not None:
    return {
      "kind": "hub",
      "hub_id": source.hub_id,
      "revision": os.path.basename(source.name),
    } | files
  return {"kind": "directory"} | files
