"""What every masked-image builder shares: features, manual files, image checks.

Every example has
  image: [H, W, 3] uint8 (the source's JPEG bytes are stored unchanged when
         they decode to RGB; other modes are converted to RGB and stored as PNG)
  mask:  [H, W] uint8, 1 on the object (stored as a 1-channel PNG)
  label: int, index into the builder's class list
  id:    str, unique within the dataset (records come back in no fixed order
         from `tfds.data_source`: join on `id`, never on position)
  boxes: [N, 4] float32 (x_min, y_min, x_max, y_max) in pixels of `image`
         with pixel edges (a box over pixel column 0 only is 0..1); builders
         whose source has no boxes store the mask's bounding box.

TFDS writes a split into `<name>/<config>/<version>.incomplete*` and renames it
only when everything succeeded, so a failed build leaves what was already
prepared untouched.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import dataclasses
import io
import logging
import os
import re
import tarfile
import zipfile

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

BAD_IMAGE_POLICIES = ("fail", "skip")


class ManualFilesMissingError(FileNotFoundError):
  """The manual directory lacks files the builder needs."""


class UnreadableImageError(ValueError):
  """An image in the source archives cannot be decoded."""


@dataclasses.dataclass(frozen=True)
class ManualFile:
  """One file users place in `manual_dir`: accepted names and where to get it."""

  names: tuple[str, ...]
  source: str

  def find(self, manual_dir) -> str | None:
    for name in self.names:
      path = os.path.join(manual_dir, name)
      if os.path.exists(path):
        return path
    return None


def require_manual_files(
  dataset: str, manual_dir, files: dict[str, ManualFile]
) -> dict[str, str]:
  """Returns {key: path}; raises ManualFilesMissingError naming every missing file."""
  if manual_dir is None:
    missing = list(files.values())
    where = "no manual_dir was given"
  else:
    missing = [f for f in files.values() if f.find(manual_dir) is None]
    where = f"not found in manual_dir={os.fspath(manual_dir)!r}"
  if missing:
    lines = "\n".join(
      f"  - {' or '.join(f.names)}: {f.source}" for f in missing
    )
    raise ManualFilesMissingError(
      f"{dataset}: {where}; place these files there (the archives as "
      f"distributed, not extracted):\n{lines}"
    )
  return {k: f.find(manual_dir) for k, f in files.items()}


def check_policy(policy: str) -> str:
  if policy not in BAD_IMAGE_POLICIES:
    raise ValueError(
      f"on_bad_image must be one of {BAD_IMAGE_POLICIES}, got {policy!r}."
    )
  return policy


@dataclasses.dataclass
class BadImages:
  """Applies the unreadable-image policy and counts what was skipped."""

  policy: str = "fail"
  skipped: list = dataclasses.field(default_factory=list)

  def handle(self, name: str, error: Exception) -> None:
    if self.policy == "fail":
      raise UnreadableImageError(
        f"Cannot decode image {name!r} ({error}). Re-download the archive, or build with "
        "on_bad_image='skip' to leave it out (skipped files are counted in the dataset's metadata)."
      ) from error
    logging.warning("Skipping unreadable image %s: %s", name, error)
    self.skipped.append(name)


def read_image(data: bytes, name: str) -> tuple[bytes, int, int]:
  """Checks that `data` decodes; returns (bytes to store, height, width).

  RGB JPEGs are kept byte for byte; anything else (grayscale, CMYK, PNG,
  palette) is converted to RGB and stored as PNG, so nothing is recompressed
  lossily.
  """
  with Image.open(io.BytesIO(data)) as im:
    im.load()
    width, height = im.size
    if im.format == "JPEG" and im.mode == "RGB":
      return data, height, width
    return encode_png(np.asarray(im.convert("RGB"))), height, width


def encode_png(array: np.ndarray) -> bytes:
  buf = io.BytesIO()
  Image.fromarray(np.asarray(array, np.uint8)).save(buf, format="PNG")
  return buf.getvalue()


def mask_feature(mask: np.ndarray) -> bytes:
  """[H, W] uint8 in {0, 1} -> PNG bytes for the 1-channel `mask` feature."""
  return encode_png(np.asarray(mask, np.uint8))


def fill_boxes(height: int, width: int, boxes: np.ndarray) -> np.ndarray:
  """[H, W] uint8 mask with 1 inside every box (pixel edges; fractional edges
  cover the pixels whose centres fall inside)."""
  mask = np.zeros((height, width), np.uint8)
  for x0, y0, x1, y1 in np.asarray(boxes, np.float64).reshape(-1, 4):
    c0, c1 = (
      int(np.clip(np.round(x0), 0, width)),
      int(np.clip(np.round(x1), 0, width)),
    )
    r0, r1 = (
      int(np.clip(np.round(y0), 0, height)),
      int(np.clip(np.round(y1), 0, height)),
    )
    mask[r0:r1, c0:c1] = 1
  return mask


def mask_box(mask: np.ndarray) -> np.ndarray:
  """[1, 4] bounding box (pixel edges) of the mask's 1s, or [0, 4] when empty."""
  ys, xs = np.nonzero(mask)
  if len(ys) == 0:
    return np.zeros((0, 4), np.float32)
  return np.array(
    [[xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]], np.float32
  )


def features(
  class_names: Sequence[str] | None, **extra
) -> tfds.features.FeaturesDict:
  """The shared features; `class_names=None` when the names are only known
  from the archives (set `info.features['label'].names` before writing)."""
  if class_names is None:
    label = tfds.features.ClassLabel()
  else:
    label = tfds.features.ClassLabel(names=list(class_names))
  return tfds.features.FeaturesDict(
    {
      "image": tfds.features.Image(shape=(None, None, 3)),
      "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
      "label": label,
      "id": tfds.features.Text(),
      "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
      **extra,
    }
  )


def iter_tar(path_or_fileobj, select=None) -> Iterator[tuple[str, bytes]]:
  """Streams (member name, bytes) of regular files in a tar/tgz, one pass.

  `select(name) -> bool` picks members before their bytes are read.
  """
  kwargs = (
    {"fileobj": path_or_fileobj}
    if hasattr(path_or_fileobj, "read")
    else {"name": os.fspath(path_or_fileobj)}
  )
  with tarfile.open(mode="r|*", **kwargs) as tar:
    for member in tar:
      if not member.isfile():
        continue
      name = (
        member.name.lstrip("./")
        if member.name.startswith("./")
        else member.name
      )
      if select is not None and not select(name):
        continue
      yield name, tar.extractfile(member).read()


def read_tar_files(path, names_or_pattern) -> dict[str, bytes]:
  """Reads the members matching a regex (or in a set of names) into memory."""
  if isinstance(names_or_pattern, str):
    pattern = re.compile(names_or_pattern)
    select = lambda n: pattern.search(n) is not None  # noqa: E731
  else:
    wanted = set(names_or_pattern)
    select = lambda n: n in wanted  # noqa: E731
  return dict(iter_tar(path, select))


def open_in_zip(zip_path: str, basename: str):
  """Returns a file object for the zip member named `basename` (in any folder;
  macOS `__MACOSX/` resource forks are ignored)."""
  zf = zipfile.ZipFile(zip_path)
  for name in zf.namelist():
    if name.rsplit("/", 1)[-1] == basename and not name.startswith("__MACOSX/"):
      return zf.open(name)
  raise ManualFilesMissingError(
    f"{zip_path} has no member {basename!r}; members: {zf.namelist()[:20]}"
  )


@dataclasses.dataclass(eq=False)
class MaskedBuilderConfig(tfds.core.BuilderConfig):
  """`on_bad_image`: 'fail' (default) raises naming the file; 'skip' leaves it
  out and records it under metadata['skipped_images'][split]."""

  on_bad_image: str = "fail"


class MaskedImageBuilder(tfds.core.GeneratorBasedBuilder):
  """Base of the masked-image builders (manual archives, array_record)."""

  BUILDER_CONFIG_CLASS = MaskedBuilderConfig
  BUILDER_CONFIGS = [MaskedBuilderConfig(name="default")]
  DESCRIPTION = ""
  HOMEPAGE = ""
  CITATION = ""

  @tfds.core.utils.classproperty
  @classmethod
  def code_path(cls):
    """No checksums file or package metadata: these builders download nothing.

    (TFDS's default looks the module up through `importlib_resources`, an
    extra dependency we do not need.)
    """
    return None

  def _info_features(self) -> tfds.features.FeaturesDict:
    raise NotImplementedError

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
      builder=self,
      description=self.DESCRIPTION,
      features=self._info_features(),
      homepage=self.HOMEPAGE,
      citation=self.CITATION,
      metadata=tfds.core.MetadataDict(),
    )

  def _bad_images(self, split: str) -> BadImages:
    bad = BadImages(check_policy(self.builder_config.on_bad_image))
    self.info.metadata.setdefault("skipped_images", {})[split] = bad.skipped
    return bad

  def _manual(self, dl_manager) -> dict[str, str]:
    try:
      manual_dir = dl_manager.manual_dir  # TFDS asserts that it exists.
    except AssertionError:
      manual_dir = None
    return require_manual_files(self.name, manual_dir, self.MANUAL_FILES)


def manual_instructions(files: dict[str, ManualFile]) -> str:
  return "Place in manual_dir:\n" + "\n".join(
    f"  - {' or '.join(f.names)}: {f.source}" for f in files.values()
  )
