"""What the archive builders share: manual files, archive scans, image and
mask encoding, the features, and the errors a build raises.

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

A manual file is found under any of the names it was distributed under
(`ManualFile`, `require_manual_files`); archives are streamed, never
extracted (`iter_tar`, `open_in_zip`). An archive whose member names match
nothing the builder reads fails with `ArchiveLayoutError`, naming the
expected pattern and members actually seen. The base builder, its checks
and skip policies are in `base`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
import dataclasses
import io
import os
import re
import tarfile
import zipfile

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds


class ManualFilesMissingError(FileNotFoundError):
  """The manual directory, or an archive in it, lacks files the builder needs."""


class UnreadableImageError(ValueError):
  """An image in the source archives cannot be decoded."""


class ArchiveLayoutError(ValueError):
  """No member of an archive is named the way the builder expects."""


class InvalidExampleError(ValueError):
  """An example cannot be stored (label out of range, malformed field)."""


class InvalidAnnotationError(ValueError):
  """An annotation file cannot be read, or gives a box that is no box."""


class MemberTooLargeError(ValueError):
  """An archive member is larger than a member is read into memory."""


# The most bytes one archive member (an image, annotation or list file) is
# read into memory with: the originals' largest are a few MB. A larger one
# is refused before it is read (a 2 MB .tgz can hold a 2 GB member of
# zeros). Raise it (`common.MAX_MEMBER_BYTES = ...` before `build`) for
# genuine larger members; archives inside archives are streamed, not read.
MAX_MEMBER_BYTES = 512 << 20


def check_member_size(archive: str, member: str, size: int) -> None:
  """MemberTooLargeError naming `archive` and `member` when `size` bytes
  exceed MAX_MEMBER_BYTES (read at call time, so it can be changed)."""
  limit = MAX_MEMBER_BYTES
  if size > limit:
    raise MemberTooLargeError(
      f"{archive}: member {member} is {size:,} bytes, more than the "
      f"{limit:,} a member may have (common.MAX_MEMBER_BYTES); not reading "
      "it. Is it the archive as distributed? Raise the limit if the member "
      "is genuine."
    )


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


# PIL modes whose pixels are wider than 8 bits: 16-bit grayscale ('I;16',
# 'I;16B', ... as PIL opens a 16-bit PNG) and 32-bit integers ('I'). PIL's
# convert('L'/'RGB') clips them at 255 (a 16-bit image turns white); these
# are read by value instead (`gray_values`). Every other mode PIL opens has
# 8 bits per channel (16-bit RGB(A) PNGs are opened as 8-bit by PIL itself,
# their high bytes; 1-, 2- and 4-bit grayscale scaled to 0..255).
WIDE_MODES = ("I", "I;16", "I;16B", "I;16L", "I;16N")
DEPTH_16 = 65535


def gray_values(im: Image.Image) -> tuple[np.ndarray, int]:
  """([H, W] grayscale values, the largest value the image's depth allows).

  1-bit: 0/1 and 1; 16-bit grayscale (and 32-bit integer images whose
  values fit 16 bits, as older PIL opened 16-bit PNGs): 0..65535 and 65535;
  every other mode through PIL's 'L': 0..255 and 255. Floating-point and
  wider integer images have no known range: ValueError.
  """
  if im.mode == "1":
    return np.asarray(im, np.uint8), 1
  if im.mode in WIDE_MODES:
    values = np.asarray(im).astype(np.int64)
    if values.size and (values.min() < 0 or values.max() > DEPTH_16):
      raise ValueError(
        f"{im.mode} image with values {values.min()}..{values.max()}, "
        "outside the 16-bit range; its depth is unknown"
      )
    return values, DEPTH_16
  if im.mode == "F":
    raise ValueError("floating-point image: its range is unknown")
  return np.asarray(im.convert("L")), 255


def to_uint8(values: np.ndarray, top: int) -> np.ndarray:
  """Values of range 0..`top` (`gray_values`) as uint8 0..255: 16-bit by
  its high byte (value >> 8, as PIL reads 16-bit RGB), 1-bit as 0/255."""
  if top == 255:
    return np.asarray(values, np.uint8)
  if top == DEPTH_16:
    return (np.asarray(values) >> 8).astype(np.uint8)
  return (np.asarray(values, np.int64) * 255 // top).astype(np.uint8)


def rgb_array(im: Image.Image) -> np.ndarray:
  """[H, W, 3] uint8 of any image PIL opens; 16-bit grayscale is scaled
  from its range (value >> 8), never clipped to white."""
  if im.mode in WIDE_MODES or im.mode == "F":
    gray = to_uint8(*gray_values(im))
    return np.repeat(gray[..., None], 3, axis=-1)
  return np.asarray(im.convert("RGB"))


def read_image(data: bytes, name: str) -> tuple[bytes, int, int]:
  """Checks that `data` decodes; returns (bytes to store, height, width).

  RGB JPEGs are kept byte for byte; anything else (grayscale, CMYK, PNG,
  palette, 16-bit grayscale scaled by its range: `rgb_array`) is converted
  to RGB and stored as PNG, so nothing is recompressed lossily.
  """
  with Image.open(io.BytesIO(data)) as im:
    im.load()
    width, height = im.size
    if im.format == "JPEG" and im.mode == "RGB":
      return data, height, width
    return encode_png(rgb_array(im)), height, width


def read_gray(data: bytes) -> tuple[np.ndarray, int]:
  """A mask or segmentation image's ([H, W] values, top of its range)
  (`gray_values`): a builder thresholds the values on their own range."""
  with Image.open(io.BytesIO(data)) as im:
    return gray_values(im)


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


# Why an annotation is refused (or, with on_bad_annotation='skip', its image
# left out): the reasons `Source.skipped` counts.
UNREADABLE_ANNOTATION = "unreadable annotation"
NON_FINITE_BOX = "non-finite box"
INVERTED_BOX = "inverted box"


def describe_box(box) -> str:
  """'(xmin 2, ymin nan, xmax 10, ymax 12)' of an (x0, y0, x1, y1) box."""
  names = ("xmin", "ymin", "xmax", "ymax")
  return "(" + ", ".join(f"{k} {float(v):g}" for k, v in zip(names, box)) + ")"


def box_problem(boxes) -> tuple[str, str] | None:
  """(reason, what is wrong) of the first box of [N, 4] (x0, y0, x1, y1)
  `boxes` with a coordinate that is not a finite number (NaN, inf) or that
  is inverted (x1 < x0 or y1 < y0, which fills nothing); None when every
  box is a box. Empty boxes (x1 == x0) are boxes."""
  boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
  for i, box in enumerate(boxes):
    where = f"box {i + 1} of {len(boxes)} {describe_box(box)}"
    if not np.isfinite(box).all():
      return NON_FINITE_BOX, f"{where} has a coordinate that is not a number"
    if box[2] < box[0] or box[3] < box[1]:
      axis = "xmax < xmin" if box[2] < box[0] else "ymax < ymin"
      return INVERTED_BOX, f"{where} is inverted ({axis})"
  return None


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
  the next item (as a stream: a tar inside the tar is read as it is
  iterated). `select(name) -> bool` picks members. `expect` describes
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
  path_or_fileobj, select=None, expect: str | None = None, label=None
) -> Iterator[tuple[str, bytes]]:
  """Streams (member name, bytes) of regular files in a tar/tgz, one pass
  (see `iter_tar_members` for `select` and `expect`). A member larger than
  MAX_MEMBER_BYTES (its header's size) raises MemberTooLargeError before
  any of it is read; `label` names the archive in messages (default its
  file name)."""
  archive = label or _archive_label(path_or_fileobj)
  for name, tar, member in iter_tar_members(path_or_fileobj, select, expect):
    check_member_size(archive, name, member.size)
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


def manual_instructions(files: dict[str, ManualFile]) -> str:
  return "Place in manual_dir:\n" + "\n".join(
    f"  - {' or '.join(f.names)}: {f.source}" for f in files.values()
  )
