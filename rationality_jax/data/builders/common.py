"""What every archive builder shares: features, manual files, archive scans,
and the checks that keep a build from being silently incomplete.

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

Completeness: every builder checks that what its annotation files list was
found in the archives. Anything left out - by a policy, `on_bad_image` or
`on_missing`, set to 'skip' - is recorded per split and reason in the
dataset's metadata (`Source.skipped` reads it back); with the default 'fail'
the build stops and names what is missing. An archive whose member names
match nothing the builder reads fails with `ArchiveLayoutError`, naming the
expected pattern and members actually seen. Every example is checked before
TFDS stores it (`InvalidExampleError`: label out of range, malformed field),
with a short message naming its id.

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

from rationality_jax import console

POLICIES = ("fail", "skip")
UNREADABLE = "unreadable image"


class ManualFilesMissingError(FileNotFoundError):
  """The manual directory, or an archive in it, lacks files the builder needs."""


class UnreadableImageError(ValueError):
  """An image in the source archives cannot be decoded."""


class ArchiveLayoutError(ValueError):
  """No member of an archive is named the way the builder expects."""


class InvalidExampleError(ValueError):
  """An example cannot be stored (label out of range, malformed field)."""


def archive_names(stem: str, *suffixes: str) -> tuple[str, ...]:
  """`stem` + each suffix: the names one archive was distributed under."""
  return tuple(stem + s for s in suffixes)


TAR_SUFFIXES = (".tar", ".tar.gz", ".tgz")


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
      f"distributed, not extracted; any of the names listed):\n{lines}"
    )
  return {k: f.find(manual_dir) for k, f in files.items()}


def check_policy(field: str, policy: str) -> str:
  if policy not in POLICIES:
    raise ValueError(f"{field} must be one of {POLICIES}, got {policy!r}.")
  return policy


@dataclasses.dataclass
class Skips:
  """What one split leaves out, by reason, and the policies that decide.

  `items` ({reason: [member or item name, ...]}) is the split's entry in the
  builder's metadata (`metadata['skipped'][split]`), saved with the dataset;
  `Source.skipped` reads it back as counts.
  """

  dataset: str
  split: str
  on_bad_image: str = "fail"
  on_missing: str = "fail"
  items: dict[str, list[str]] = dataclasses.field(default_factory=dict)

  def bad_image(self, name: str, error: Exception) -> None:
    """An image that does not decode: raise ('fail') or record it ('skip')."""
    if self.on_bad_image == "fail":
      raise UnreadableImageError(
        f"Cannot decode image {name!r} ({error}). Re-download the archive, "
        "or build with on_bad_image='skip' to leave it out (skipped files "
        "are counted in the dataset's metadata and in Source.skipped)."
      ) from error
    logging.warning("Skipping unreadable image %s: %s", name, error)
    self.items.setdefault(UNREADABLE, []).append(name)

  def missing(self, reason: str, names, where: str) -> None:
    """Items one source lists and another lacks (an image its annotation
    files list, an annotation an image needs), described by `where`:
    'fail' raises naming them, 'skip' records them under `reason`."""
    names = sorted(names)
    if not names:
      return
    if self.on_missing == "fail":
      raise ManualFilesMissingError(
        f"{self.dataset} ({self.split}): {len(names)} x {reason}: {where}, "
        f"e.g. {names[:3]}. Re-download the archives, or build with "
        "on_missing='skip' to leave them out (counted in Source.skipped)."
      )
    logging.warning(
      "%s (%s): skipping %d x %s (%s)",
      self.dataset,
      self.split,
      len(names),
      reason,
      where,
    )
    self.items.setdefault(reason, []).extend(names)


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
  class_names: Sequence[str] | None, masks: bool = True, **extra
) -> tfds.features.FeaturesDict:
  """The shared features; `class_names=None` when the names are only known
  from the archives (set `info.features['label'].names` before writing);
  `masks=False` leaves out `mask` and `boxes` (training-only builders)."""
  if class_names is None:
    label = tfds.features.ClassLabel()
  else:
    label = tfds.features.ClassLabel(names=list(class_names))
  spatial = {
    "mask": tfds.features.Image(shape=(None, None, 1), encoding_format="png"),
    "boxes": tfds.features.Tensor(shape=(None, 4), dtype=np.float32),
  }
  return tfds.features.FeaturesDict(
    {
      "image": tfds.features.Image(shape=(None, None, 3)),
      **(spatial if masks else {}),
      "label": label,
      "id": tfds.features.Text(),
      **extra,
    }
  )


def _archive_label(path_or_fileobj) -> str:
  name = getattr(path_or_fileobj, "name", path_or_fileobj)
  return os.path.basename(os.fspath(name)) if name else "archive"


def iter_tar_members(
  path_or_fileobj, select=None, expect: str | None = None
) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
  """Streams (member name, tar, member) of the regular files in a tar/tgz.

  One sequential pass (`r|*`): nothing is extracted to disk, and a member's
  bytes are only read if the caller reads `tar.extractfile(member)` before
  the next item. `select(name) -> bool` picks members. `expect` describes
  the names `select` looks for: when the whole archive has none,
  ArchiveLayoutError names `expect` and members actually seen.
  """
  kwargs = (
    {"fileobj": path_or_fileobj}
    if hasattr(path_or_fileobj, "read")
    else {"name": os.fspath(path_or_fileobj)}
  )
  seen, count, selected = [], 0, 0
  with tarfile.open(mode="r|*", **kwargs) as tar:
    for member in tar:
      if not member.isfile():
        continue
      name = member.name[2:] if member.name.startswith("./") else member.name
      count += 1
      if select is not None and not select(name):
        if len(seen) < 3:
          seen.append(name)
        continue
      selected += 1
      yield name, tar, member
  if expect is not None and not selected:
    raise ArchiveLayoutError(
      f"{_archive_label(path_or_fileobj)}: no member is named like {expect}; "
      f"its {count} files include {seen}. Is it the archive as distributed?"
    )


def iter_tar(
  path_or_fileobj, select=None, expect: str | None = None
) -> Iterator[tuple[str, bytes]]:
  """Streams (member name, bytes) of regular files in a tar/tgz, one pass
  (see `iter_tar_members` for `select` and `expect`)."""
  for name, tar, member in iter_tar_members(path_or_fileobj, select, expect):
    yield name, tar.extractfile(member).read()


def tar_names(path_or_fileobj, select=None, expect: str | None = None):
  """The selected member names, without reading their bytes."""
  return [
    name for name, _, _ in iter_tar_members(path_or_fileobj, select, expect)
  ]


def read_tar_files(
  path, names_or_pattern, expect: str | None = None
) -> dict[str, bytes]:
  """Reads the members matching a regex (or in a set of names) into memory."""
  if isinstance(names_or_pattern, str):
    pattern = re.compile(names_or_pattern)
    select = lambda n: pattern.search(n) is not None  # noqa: E731
  else:
    wanted = set(names_or_pattern)
    select = lambda n: n in wanted  # noqa: E731
  return dict(iter_tar(path, select, expect))


def open_in_zip(zip_path: str, basenames: Sequence[str]):
  """Returns a file object for the zip member named any of `basenames` (in
  any folder; macOS `__MACOSX/` resource forks are ignored)."""
  zf = zipfile.ZipFile(zip_path)
  for name in zf.namelist():
    if name.rsplit("/", 1)[-1] in basenames and not name.startswith(
      "__MACOSX/"
    ):
      return zf.open(name)
  raise ManualFilesMissingError(
    f"{zip_path} has no member named {' or '.join(basenames)}; members: "
    f"{zf.namelist()[:20]}"
  )


@dataclasses.dataclass(eq=False)
class MaskedBuilderConfig(tfds.core.BuilderConfig):
  """Policies (each 'fail' by default, or 'skip': leave out and count):

  `on_bad_image`: an image that does not decode.
  `on_missing`: an item the annotation files list that the archives lack
    (image, segmentation, annotation, boxes).
  What was skipped is saved in metadata['skipped'][split] = {reason: [names]}
  ('before_split' for items dropped before splits are assigned) and read
  back as counts by `Source.skipped`.
  """

  on_bad_image: str = "fail"
  on_missing: str = "fail"


BEFORE_SPLIT = "before_split"


class MaskedImageBuilder(tfds.core.GeneratorBasedBuilder):
  """Base of the archive builders (manual archives, array_record).

  Subclasses implement `_make_splits(dl_manager) -> {split: examples}`;
  every split is checked on its way to TFDS (`_checked`).
  """

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

  def _make_splits(self, dl_manager) -> dict:
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

  def _log_download_bytes(self) -> None:
    """TFDS prints this; ours goes to the log (the console has its stage line)."""
    logging.info("preparing %s in %s", self.name, self.data_dir)

  def _log_download_done(self) -> None:
    logging.info("prepared %s in %s", self.name, self.data_dir)

  def expected_examples(self, split: str) -> int | None:
    """How many examples `split` will have, when known before generating it.

    Builders that know it from their configuration or annotation files say
    so (the progress bar then shows the time left); None otherwise.
    """
    return getattr(self, "_expected", {}).get(split)

  def _split_generators(self, dl_manager):
    c = self.builder_config
    check_policy("on_bad_image", c.on_bad_image)
    check_policy("on_missing", c.on_missing)
    self.info.metadata["skipped"] = {}
    splits = self._make_splits(dl_manager)
    return {s: self._checked(s, examples) for s, examples in splits.items()}

  def _skips(self, split: str) -> Skips:
    """The Skips of `split` (or BEFORE_SPLIT), registered in the metadata."""
    c = self.builder_config
    skipped = self.info.metadata.setdefault("skipped", {})
    if split not in skipped:
      skipped[split] = {}
    return Skips(self.name, split, c.on_bad_image, c.on_missing, skipped[split])

  def _checked(self, split: str, examples):
    """Yields `examples` after checking each can be stored.

    TFDS reports an example it cannot encode by printing the whole example
    (kilobytes of image bytes); this raises InvalidExampleError naming the
    example's id and the problem instead, and says what was skipped when a
    split ends up empty.
    """
    features = self.info.features
    num_classes = features["label"].num_classes
    count = 0
    with console.progress(
      self.expected_examples(split), f"build {self.name} {split}", "ex"
    ) as bar:
      for key, example in examples:
        label = int(example["label"])
        if not 0 <= label < num_classes:
          raise InvalidExampleError(
            f"{self.name}: {split} example {example['id']!r} has label "
            f"{label}, but there are {num_classes} classes (labels "
            f"0..{num_classes - 1}): the annotation files' labels and class "
            "list disagree."
          )
        try:
          features.encode_example(example)
        except Exception as e:  # Any encoding error is reported the same way.
          message = " ".join(str(e).split())
          raise InvalidExampleError(
            f"{self.name}: cannot store {split} example {example['id']!r}: "
            f"{type(e).__name__}: {message[:300]}"
          ) from None
        count += 1
        bar.update(1)
        yield key, example
    if not count:
      left_out = {
        reason: len(items)
        for part in (BEFORE_SPLIT, split)
        for reason, items in self.info.metadata["skipped"].get(part, {}).items()
      }
      raise InvalidExampleError(
        f"{self.name}: the {split} split has no examples; left out by the "
        f"skip policies: {left_out or 'nothing'}."
      )

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
