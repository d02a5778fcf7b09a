"""Build datasets and read them back as random-access sources (no TensorFlow).

  build("synthetic_rationality", data_dir, image_size=64)
  build("cub_200_2011", data_dir, manual_dir="/archives/cub")
  source = get_source("cub_200_2011", "test", data_dir)
  source[i] -> {image [H, W, 3] uint8, mask [H, W] uint8, label int32, id str,
                boxes [N, 4] float32, ...}
  source.skipped -> {reason: count} left out of this split by the build

Keyword arguments are the builder's config fields (for example
`on_bad_image='skip'`, `num_classes=8`); a config with non-default values is
stored under its own config name, so variants never overwrite each other.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import fcntl
import hashlib
import logging
import os
import re

import numpy as np
import tensorflow_datasets as tfds

from rationality_jax.data.builders.base import BEFORE_SPLIT
from rationality_jax.data.datasets import DATASETS
from rationality_jax.data.datasets import builder_class

MAX_CONFIG_NAME = 100


def _config(cls, config_kwargs: dict):
  base = cls.BUILDER_CONFIGS[0]
  if not config_kwargs:
    return base
  fields = {f.name for f in dataclasses.fields(cls.BUILDER_CONFIG_CLASS)} - {
    "name",
    "version",
    "release_notes",
    "supported_versions",
    "description",
    "tags",
  }
  unknown = set(config_kwargs) - fields
  if unknown:
    raise TypeError(
      f"{cls.name} has no config fields {sorted(unknown)}; it has {sorted(fields)}."
    )
  changed = {
    k: v for k, v in sorted(config_kwargs.items()) if getattr(base, k) != v
  }
  if not changed:
    return base

  def text(value) -> str:
    flat = str(value).replace(",", "-").replace(" ", "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "", flat).strip("-")

  name = "_".join(f"{k}-{text(v)}" for k, v in changed.items())
  if len(name) > MAX_CONFIG_NAME:  # e.g. 100 wnids: keep a directory name
    digest = hashlib.sha1(name.encode()).hexdigest()[:12]
    name = f"{name[: MAX_CONFIG_NAME - 13]}-{digest}"
  return dataclasses.replace(base, name=name, **config_kwargs)


def get_builder(name: str, data_dir, **config):
  cls = builder_class(name)
  return cls(
    data_dir=os.fspath(data_dir),
    config=_config(cls, config),
    file_format="array_record",
  )


@contextlib.contextmanager
def build_lock(data_dir, name: str, config_name: str):
  """Holds ``<data_dir>/.<name>.<config_name>.lock`` (``fcntl.flock``),
  waiting while another process (or thread) holds it.

  One build per dataset config at a time: the kernel releases the lock when
  its holder exits, however it exits, so a crashed build never leaves a
  stale lock. Remote data dirs (``gs://...``) are not locked.
  """
  data_dir = os.fspath(data_dir)
  if "://" in data_dir:
    yield
    return
  path = os.path.join(data_dir, f".{name}.{config_name}.lock")
  try:
    os.makedirs(data_dir, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  except (PermissionError, OSError) as error:
    if error.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
      raise
    # A read-only data_dir: nothing can be built into it, only reused.
    logging.info("not locking %s: %s", path, error)
    yield
    return
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      logging.warning(
        "%s (%s) is being built into %s by another process; waiting for it "
        "(%s).",
        name,
        config_name,
        data_dir,
        path,
      )
      fcntl.flock(fd, fcntl.LOCK_EX)
    yield
  finally:
    os.close(fd)  # releases the lock


def build(name: str, data_dir, manual_dir=None, **config):
  """Prepares `name` in `data_dir` (array_record) from the archives in `manual_dir`.

  Returns the TFDS builder (its `info` holds split sizes and class names).
  Already prepared data is reused; a failed build leaves no partial dataset.
  Two processes building one dataset config into one `data_dir` take turns
  (`build_lock`): the second waits, then finds it prepared and reuses it.
  """
  config_name = _config(builder_class(name), config).name
  with build_lock(data_dir, name, config_name):
    # Made under the lock: a builder reads what is prepared when it is made.
    builder = get_builder(name, data_dir, **config)
    tfds.disable_progress_bar()  # ours, with the time left, is in the builders
    download_config = tfds.download.DownloadConfig(
      manual_dir=os.fspath(manual_dir) if manual_dir is not None else None
    )
    builder.download_and_prepare(
      download_config=download_config, file_format="array_record"
    )
  return builder


class Source:
  """Random-access examples of one split with plain numpy/python values.

  len(source); source[i] -> dict (see module docstring). Record order is the
  storage order (not the generation order): use `id` to identify examples.
  `skipped` counts what the build left out of this split, by reason.
  """

  def __init__(self, data_source, info, split: str | None = None, reopen=None):
    self._source = data_source
    self.info = info
    self.split = split
    self.class_names = info.features["label"].names
    # (name, data_dir, builder config kwargs, builder module): how
    # `get_source` opened it.
    self._reopen = reopen

  def __getstate__(self):
    # Input worker processes (`make_iterator(num_workers=...)`) get a pickled
    # copy. A TFDS builder does not survive pickling with its registered
    # default config ("Cannot name a custom BuilderConfig the same as an
    # available BuilderConfig"), so a Source from `get_source` travels as the
    # arguments that open it again.
    if self._reopen is None:
      return self.__dict__
    return {"reopen": self._reopen, "split": self.split}

  def __setstate__(self, state):
    if "reopen" not in state:
      self.__dict__.update(state)
      return
    name, data_dir, config, module = state["reopen"]
    if name not in DATASETS:  # a worker process knows the package's datasets
      DATASETS.register(module)  # a builder from outside it is registered here
    self.__dict__.update(
      get_source(name, state["split"], data_dir, **config).__dict__
    )

  @property
  def skipped(self) -> dict[str, int]:
    """{reason: count} the build left out of this split (empty when nothing
    was), including what was dropped before splits were assigned (e.g.
    Caltech images without annotation under on_missing='skip')."""
    try:
      skipped = self.info.metadata["skipped"]  # Lazy metadata loads on [].
    except (KeyError, TypeError):
      return {}
    counts: dict[str, int] = {}
    for part in (skipped.get(BEFORE_SPLIT, {}), skipped.get(self.split, {})):
      for reason, items in part.items():
        if items:
          counts[reason] = counts.get(reason, 0) + len(items)
    return dict(sorted(counts.items()))

  def __len__(self):
    return len(self._source)

  def __getitem__(self, index: int) -> dict:
    return normalize_example(self._source[int(index)])

  def __repr__(self):
    return (
      f"Source({self.info.name}/{self.info.config_name}, {len(self)} examples)"
    )


def normalize_example(ex: dict) -> dict:
  out = {}
  for k, v in ex.items():
    if isinstance(v, bytes):
      v = v.decode("utf-8")
    elif k in ("mask", "soft_mask"):
      v = np.asarray(v, np.uint8)[..., 0]
    elif k == "label":
      v = np.int32(v)
    elif k == "boxes":
      v = np.asarray(v, np.float32).reshape(-1, 4)
    out[k] = v
  return out


class Subset:
  """The examples of `source` at `positions`, in that order (a `Source` view).

  len(subset); subset[i] = source[positions[i]]; ``class_names``, ``info``,
  ``split`` and ``skipped`` are the source's.
  """

  def __init__(self, source, positions):
    self.source = source
    self.positions = np.asarray(positions, np.int64).reshape(-1)
    if self.positions.size and (
      self.positions.min() < 0 or self.positions.max() >= len(source)
    ):
      raise IndexError(
        f"Subset of {source!r}: positions must lie in [0, {len(source)}); "
        f"got {self.positions.min()}..{self.positions.max()}."
      )

  # The source's, read through (a copy would not survive pickling to input
  # worker processes: see `Source.__getstate__`).
  @property
  def class_names(self):
    return self.source.class_names

  @property
  def info(self):
    return self.source.info

  @property
  def split(self):
    return self.source.split

  @property
  def skipped(self) -> dict[str, int]:
    return self.source.skipped

  def __len__(self):
    return len(self.positions)

  def __getitem__(self, index: int) -> dict:
    return self.source[int(self.positions[int(index)])]

  def __repr__(self):
    return f"Subset({self.source!r}, {len(self)} examples)"


def read_columns(
  name: str, split: str, data_dir, keys=("label", "id"), **config
) -> dict[str, np.ndarray]:
  """{key: [N] array} of some fields of every example of a prepared split,
  in the `Source`'s order, without decoding any image (cheap on ImageNet)."""
  builder = get_builder(name, data_dir, **config)
  skip = {
    key: tfds.decode.SkipDecoding()
    for key, feature in builder.info.features.items()
    if isinstance(feature, tfds.features.Image)
  }
  data_source = builder.as_data_source(split, decoders=skip)
  rows = [data_source[i] for i in range(len(data_source))]
  rows = [normalize_example({k: row[k] for k in keys}) for row in rows]
  return {key: np.asarray([row[key] for row in rows]) for key in keys}


def get_source(name: str, split: str, data_dir, **config) -> Source:
  """Reads a prepared split (`build` it first) as a `Source`."""
  builder = get_builder(name, data_dir, **config)
  if not builder.is_prepared():
    raise FileNotFoundError(
      f"{name} ({builder.builder_config.name}) is not prepared in {data_dir}: "
      f"call build({name!r}, data_dir, manual_dir=...) first."
    )
  return Source(
    builder.as_data_source(split),
    builder.info,
    split,
    reopen=(name, os.fspath(data_dir), dict(config), type(builder).__module__),
  )
