"""imagenet_c_masks: ImageNet-C with masks from the ImageNet validation boxes.

manual_dir holds the released ImageNet-C (https://zenodo.org/record/2235448):
the family tars `blur.tar`, `digital.tar`, `noise.tar`, `weather.tar`,
`extra.tar` and/or their extracted trees, both laid out as
`<corruption>/<severity 1-5>/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG`; plus the
validation boxes as for imagenet2012_val_masks (`ILSVRC2012_bbox_val_v3.tgz`,
or `LOC_val_solution.csv` together with `ILSVRC2012_img_val.tar`, which is
then read for the original image sizes the CSV lacks).

One split per corruption found (e.g. `gaussian_noise`), the severities of
config `severities` (default all five) in it; `corruption` and `severity`
are features, `id` is "<corruption>/<severity>/ILSVRC2012_val_XXXXXXXX".
Label: wnid folder in the standard 1,000-class order.

ImageNet-C images are 224 x 224: Resize(256) (short side; long side
int(256 * long / short)) then CenterCrop(224) of the original validation image.
The boxes are mapped the same way: x' = x * W256 / W - left,
y' = y * H256 / H - top with left = round((W256 - 224) / 2) and
top = round((H256 - 224) / 2), clipped to the crop, then filled (pixel
edges). `boxes` holds the mapped boxes. Config `mask_style='release'` fills
the mask as the release's ImageNet scripts did instead
(test_rationale_vlm/clip_zs_flcp_in.py with `--dataset in-c`, which takes the
original validation image's size: `release.imagenet_release_box_mask`).

Completeness: every (corruption, severity) built must hold every image the
validation boxes list, and every image must have boxes; what is missing
fails the build, or with on_missing='skip' is left out and counted
(`Source.skipped`); so are bad validation boxes (on_bad_annotation, as for
imagenet2012_val_masks). A family tar or corruption folder whose names do not
follow the layout above fails with the expected pattern and an example.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import tarfile

import numpy as np
from PIL import Image
import tensorflow_datasets as tfds

from rationality_jax.data import classnames
from rationality_jax.data import release
from rationality_jax.data.builders import base
from rationality_jax.data.builders import common
from rationality_jax.data.builders import imagenet2012_val_masks as val
from rationality_jax.data.preprocess import resized_shape

FAMILIES = {
  "noise": ("gaussian_noise", "shot_noise", "impulse_noise"),
  "blur": ("defocus_blur", "glass_blur", "motion_blur", "zoom_blur"),
  "weather": ("snow", "frost", "fog", "brightness"),
  "digital": ("contrast", "elastic_transform", "pixelate", "jpeg_compression"),
  "extra": ("speckle_noise", "gaussian_blur", "spatter", "saturate"),
}
CORRUPTIONS = tuple(c for cs in FAMILIES.values() for c in cs)
SEVERITIES = (1, 2, 3, 4, 5)
MASK_STYLES = ("ours", "release")
_MEMBER = re.compile(
  r"(?:^|/)([a-z_]+)/([1-5])/(n\d{8})/(ILSVRC2012_val_\d{8})\.JPEG$"
)
_LAYOUT = "<corruption>/<severity 1-5>/<wnid>/ILSVRC2012_val_NNNNNNNN.JPEG"
_SOURCE = (
  "https://zenodo.org/record/2235448 (blur.tar, digital.tar, noise.tar, "
  "weather.tar, extra.tar; any subset)"
)


@dataclasses.dataclass(eq=False)
class ImagenetCConfig(base.MaskedBuilderConfig):
  """`corruptions`: the splits to build (default: every corruption found);
  `severities`: those to include (each must be complete); `mask_style`:
  'ours' or 'release'."""

  corruptions: tuple[str, ...] | None = None
  severities: tuple[int, ...] = SEVERITIES
  mask_style: str = "ours"


def map_boxes_resize_crop(
  boxes, height: int, width: int, resize: int = 256, crop: int = 224
) -> np.ndarray:
  """Original-pixel boxes -> pixels of Resize(resize) + CenterCrop(crop)."""
  rh, rw = resized_shape(height, width, resize)
  top = round((rh - crop) / 2.0)
  left = round((rw - crop) / 2.0)
  b = np.asarray(boxes, np.float64).reshape(-1, 4) * np.array(
    [rw / width, rh / height, rw / width, rh / height]
  )
  b = b - np.array([left, top, left, top])
  return np.clip(b, 0, crop).astype(np.float32)


def _family_tar(manual_dir, family) -> str | None:
  names = common.archive_names(family, *common.TAR_SUFFIXES)
  return common.ManualFile(names, _SOURCE).find(manual_dir)


def _walk(directory) -> list[str]:
  """Paths (relative to the parent of `directory`) of the files under it."""
  root = os.path.dirname(directory)
  return sorted(
    os.path.relpath(os.path.join(d, f), root).replace(os.sep, "/")
    for d, _, fs in os.walk(directory)
    for f in fs
  )


def _require_layout(where: str, names: list[str]) -> set[str]:
  """The corruptions named by `names`; ArchiveLayoutError when none is."""
  found = {m.group(1) for m in map(_MEMBER.search, names) if m}
  if not found:
    raise common.ArchiveLayoutError(
      f"{where}: no file is named like {_LAYOUT}; its {len(names)} files "
      f"include {names[:3]}. Is it ImageNet-C as distributed?"
    )
  return found


class ImagenetCMasks(base.MaskedImageBuilder):
  """ImageNet-C with box masks mapped through Resize(256) + CenterCrop(224)."""

  name = "imagenet_c_masks"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIG_CLASS = ImagenetCConfig
  BUILDER_CONFIGS = [ImagenetCConfig(name="default")]
  MANUAL_FILES = {"boxes": val.BOX_FILES}
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.manual_instructions(
    {
      "corruptions": common.ManualFile(
        ("<family>.tar", "<corruption>/"), _SOURCE
      ),
      **MANUAL_FILES,
    }
  )
  DESCRIPTION = __doc__
  HOMEPAGE = "https://github.com/hendrycks/robustness"

  REPORT_KEY = "imagenet"  # with its corruption and severity
  # Its images are already Resize(256) + CenterCrop(224) of the validation
  # images: resize(224) is then the identity. The release's masks are a
  # builder option (mask_style), not a geometry.
  STUDY_EVAL_SIZE = (224, 224)

  @classmethod
  def prompt_names(cls, names=None, readable=False, rule="study"):
    """The first WordNet synonym of each class (`classnames.imagenet_names`),
    under both rules (the release's imagenet-classes.txt agrees)."""
    del names, readable, rule
    return classnames.imagenet_names()

  def _info_features(self):
    return common.features(
      classnames.imagenet_wnids(),
      corruption=tfds.features.Text(),
      severity=tfds.features.Scalar(dtype=np.int32),
    )

  def _locations(self, manual_dir) -> dict[str, str]:
    """{corruption: directory or family tar} present in manual_dir."""
    found = {}
    for family, corruptions in FAMILIES.items():
      tar = _family_tar(manual_dir, family)
      in_tar = set()
      if tar is not None:
        with tarfile.open(tar) as t:  # reads the member headers only
          in_tar = _require_layout(os.path.basename(tar), t.getnames())
      for c in corruptions:
        directory = os.path.join(manual_dir, c)
        if os.path.isdir(directory):
          _require_layout(f"{directory}/", _walk(directory))
          found[c] = directory
        elif c in in_tar:
          found[c] = tar
    return found

  def _make_splits(self, dl_manager):
    c = self.builder_config
    if c.mask_style not in MASK_STYLES:
      raise ValueError(
        f"mask_style must be one of {MASK_STYLES}, got {c.mask_style!r}."
      )
    if not c.severities or set(c.severities) - set(SEVERITIES):
      raise ValueError(
        f"severities must be a non-empty subset of {SEVERITIES}, got "
        f"{c.severities!r}."
      )
    files = self._manual(dl_manager)
    manual_dir = os.fspath(dl_manager.manual_dir)
    found = self._locations(manual_dir)
    wanted = c.corruptions or tuple(x for x in CORRUPTIONS if x in found)
    missing = [x for x in wanted if x not in found]
    if not wanted or missing:
      families = {
        f
        for f, cs in FAMILIES.items()
        for x in (missing or CORRUPTIONS)
        if x in cs
      }
      raise common.ManualFilesMissingError(
        "imagenet_c_masks: no data for corruptions "
        f"{missing or list(CORRUPTIONS)} in {manual_dir}; expected "
        f"{', '.join(sorted(f + '.tar' for f in families))} or extracted "
        "<corruption>/<severity>/<wnid>/*.JPEG "
        f"directories, from {_SOURCE}."
      )
    annotations, bad = val.read_val_annotations(
      files["boxes"], self._skips(base.BEFORE_SPLIT)
    )
    if any(a.size is None for a in annotations.values()):
      self._read_sizes(manual_dir, files["boxes"], annotations)
    return {
      x: self._generate_examples(found[x], x, annotations, bad) for x in wanted
    }

  def _read_sizes(self, manual_dir, boxes_file, annotations):
    """Fills the original image sizes the CSV lacks from the val tar."""
    images = val.IMAGES_FILE.find(manual_dir)
    if images is None:
      raise common.ManualFilesMissingError(
        f"imagenet_c_masks: {boxes_file} has no image sizes; also place "
        f"ILSVRC2012_img_val.tar in {manual_dir} ({val.IMAGES_FILE.source})."
      )
    for name, data in common.iter_tar(
      images,
      lambda n: val.VAL_NAME.search(n) is not None,
      expect="ILSVRC2012_val_NNNNNNNN.JPEG (8 digits)",
    ):
      stem = val.VAL_NAME.search(name).group(1)
      if stem in annotations:
        with Image.open(io.BytesIO(data)) as im:
          annotations[stem].size = (im.size[1], im.size[0])
    unsized = [s for s, a in annotations.items() if a.size is None]
    self._skips(base.BEFORE_SPLIT).missing(
      "original image missing",
      unsized,
      f"listed in {os.path.basename(boxes_file)} but not in "
      f"{os.path.basename(images)}, whose size maps the boxes",
    )

  def _members(self, location, corruption):
    if os.path.isdir(location):
      root = os.path.dirname(location)
      for rel in _walk(location):
        if _MEMBER.search(rel):
          path = os.path.join(root, rel)
          common.check_member_size(root, rel, os.path.getsize(path))
          with open(path, "rb") as fh:
            yield rel, fh.read()
    else:
      yield from common.iter_tar(
        location,
        lambda n: (
          (m := _MEMBER.search(n)) is not None and m.group(1) == corruption
        ),
      )

  def _mask(self, ann, h, w, boxes) -> np.ndarray:
    if self.builder_config.mask_style == "release":
      return release.imagenet_release_box_mask(
        ann.boxes, *ann.size, crop=min(h, w)
      )
    return common.fill_boxes(h, w, boxes)

  def _generate_examples(self, location, corruption, annotations, bad):
    skips = self._skips(corruption)
    severities = {str(s) for s in self.builder_config.severities}
    label_of = {w: i for i, w in enumerate(classnames.imagenet_wnids())}
    seen = {s: set() for s in severities}
    no_boxes = []
    for name, data in self._members(location, corruption):
      _, severity, wnid, stem = _MEMBER.search(name).groups()
      if severity not in severities:
        continue
      key = f"{corruption}/{severity}/{stem}"
      seen[severity].add(stem)
      if stem in bad:  # Counted before the split (on_bad_annotation='skip').
        continue
      if stem not in annotations:
        no_boxes.append(key)
        continue
      ann = annotations[stem]
      if ann.size is None:  # Counted before the split (on_missing='skip').
        continue
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        skips.bad_image(name, e)
        continue
      boxes = map_boxes_resize_crop(ann.boxes, *ann.size, crop=min(h, w))
      yield (
        key,
        {
          "image": image,
          "mask": common.mask_feature(self._mask(ann, h, w, boxes)),
          "label": label_of[wnid],
          "id": key,
          "boxes": boxes,
          "corruption": corruption,
          "severity": int(severity),
        },
      )
    where = os.path.basename(location.rstrip("/"))
    skips.missing(
      "boxes missing",
      no_boxes,
      f"in {where} but without validation boxes",
    )
    skips.missing(
      "image missing",
      [
        f"{corruption}/{s}/{stem}"
        for s in sorted(severities)
        for stem in annotations
        if stem not in seen[s]
      ],
      f"listed in the validation boxes but not in {where}",
    )


# The dataset this module registers (`rationality_jax.data.DATASETS`).
DATASET = ImagenetCMasks
