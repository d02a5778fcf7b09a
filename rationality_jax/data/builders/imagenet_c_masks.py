"""imagenet_c_masks: ImageNet-C with masks from the ImageNet validation boxes.

manual_dir holds the released ImageNet-C (https://zenodo.org/record/2235448):
the family tars `blur.tar`, `digital.tar`, `noise.tar`, `weather.tar`,
`extra.tar` and/or their extracted trees, both laid out as
`<corruption>/<severity 1-5>/<wnid>/ILSVRC2012_val_XXXXXXXX.JPEG`; plus the
validation boxes as for imagenet2012_val_masks (`ILSVRC2012_bbox_val_v3.tgz`,
or `LOC_val_solution.csv` together with `ILSVRC2012_img_val.tar`, which is
then read for the original image sizes the CSV lacks).

One split per corruption found (e.g. `gaussian_noise`), every severity in it;
`corruption` and `severity` are features, `id` is
"<corruption>/<severity>/ILSVRC2012_val_XXXXXXXX". Label: wnid folder in the
standard 1,000-class order.

ImageNet-C images are 224 x 224: Resize(256) (short side; long side
int(256 * long / short)) then CenterCrop(224) of the original validation image.
The boxes are mapped the same way: x' = x * W256 / W - left,
y' = y * H256 / H - top with left = round((W256 - 224) / 2) and
top = round((H256 - 224) / 2), clipped to the crop, then filled (pixel
edges). `boxes` holds the mapped boxes.
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
_MEMBER = re.compile(
  r"(?:^|/)([a-z_]+)/([1-5])/(n\d{8})/(ILSVRC2012_val_\d{8})\.JPEG$"
)
_SOURCE = (
  "https://zenodo.org/record/2235448 (blur.tar, digital.tar, noise.tar, "
  "weather.tar, extra.tar; any subset)"
)


@dataclasses.dataclass(eq=False)
class ImagenetCConfig(common.MaskedBuilderConfig):
  """`corruptions`: the splits to build (default: every corruption found)."""

  corruptions: tuple[str, ...] | None = None


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


class ImagenetCMasks(common.MaskedImageBuilder):
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
      tar = os.path.join(manual_dir, f"{family}.tar")
      in_tar = set()
      if os.path.exists(tar):
        with tarfile.open(tar) as t:  # reads the member headers only
          in_tar = {m.group(1) for m in map(_MEMBER.search, t.getnames()) if m}
      for c in corruptions:
        if os.path.isdir(os.path.join(manual_dir, c)):
          found[c] = os.path.join(manual_dir, c)
        elif c in in_tar:
          found[c] = tar
    return found

  def _split_generators(self, dl_manager):
    files = self._manual(dl_manager)
    manual_dir = os.fspath(dl_manager.manual_dir)
    found = self._locations(manual_dir)
    wanted = self.builder_config.corruptions or tuple(
      c for c in CORRUPTIONS if c in found
    )
    missing = [c for c in wanted if c not in found]
    if not wanted or missing:
      families = {
        f
        for f, cs in FAMILIES.items()
        for c in (missing or CORRUPTIONS)
        if c in cs
      }
      raise common.ManualFilesMissingError(
        "imagenet_c_masks: no data for corruptions "
        f"{missing or list(CORRUPTIONS)} in {manual_dir}; expected "
        f"{', '.join(sorted(f + '.tar' for f in families))} or extracted "
        "<corruption>/<severity>/<wnid>/*.JPEG "
        f"directories, from {_SOURCE}."
      )
    annotations = val.read_val_annotations(files["boxes"])
    if any(a.size is None for a in annotations.values()):
      images = val.IMAGES_FILE.find(manual_dir)
      if images is None:
        raise common.ManualFilesMissingError(
          f"imagenet_c_masks: {files['boxes']} has no image sizes; also place "
          f"ILSVRC2012_img_val.tar in {manual_dir} ({val.IMAGES_FILE.source})."
        )
      for name, data in common.iter_tar(
        images, lambda n: val.VAL_NAME.search(n) is not None
      ):
        stem = val.VAL_NAME.search(name).group(1)
        if stem in annotations:
          with Image.open(io.BytesIO(data)) as im:
            annotations[stem].size = (im.size[1], im.size[0])
    return {
      c: self._generate_examples(found[c], c, annotations) for c in wanted
    }

  def _members(self, location, corruption):
    if os.path.isdir(location):
      root = os.path.dirname(location)
      for dirpath, _, filenames in sorted(os.walk(location)):
        for f in sorted(filenames):
          path = os.path.join(dirpath, f)
          rel = os.path.relpath(path, root).replace(os.sep, "/")
          if _MEMBER.search(rel):
            with open(path, "rb") as fh:
              yield rel, fh.read()
    else:
      yield from common.iter_tar(
        location,
        lambda n: (
          (m := _MEMBER.search(n)) is not None and m.group(1) == corruption
        ),
      )

  def _generate_examples(self, location, corruption, annotations):
    bad = self._bad_images(corruption)
    label_of = {w: i for i, w in enumerate(classnames.imagenet_wnids())}
    for name, data in self._members(location, corruption):
      _, severity, wnid, stem = _MEMBER.search(name).groups()
      if stem not in annotations:
        raise common.ManualFilesMissingError(
          f"The validation boxes have no entry for {stem} ({name})."
        )
      ann = annotations[stem]
      try:
        image, h, w = common.read_image(data, name)
      except Exception as e:
        bad.handle(name, e)
        continue
      boxes = map_boxes_resize_crop(ann.boxes, *ann.size, crop=min(h, w))
      key = f"{corruption}/{severity}/{stem}"
      yield (
        key,
        {
          "image": image,
          "mask": common.mask_feature(common.fill_boxes(h, w, boxes)),
          "label": label_of[wnid],
          "id": key,
          "boxes": boxes,
          "corruption": corruption,
          "severity": int(severity),
        },
      )
