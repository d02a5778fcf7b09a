"""imagenet2012_train: the ILSVRC2012 training images, for training only.

manual_dir: `ILSVRC2012_img_train.tar` (https://image-net.org, registration
required, 138 GB) as distributed: a tar of 1,000 per-class tars
`n01440764.tar`, ..., each holding `n01440764_<number>.JPEG`. Both levels
are streamed (nothing is extracted to disk).

Features: image, label and id ("n01440764/n01440764_10026") only - no mask
and no boxes: training uses image and label (`preprocess.study_spec(
'imagenet2012_train', train=True)`; geometric ops skip absent fields).
Labels and class names are those of imagenet2012_val_masks (the wnid's index
in the sorted 1,000 wnids, `third_party/imagenet/synset_words.txt`), so a
model trained here is evaluated on the validation masks consistently. The
archive's few CMYK and grayscale JPEGs (and one PNG named .JPEG) are
converted to RGB and stored as PNG, like every builder's.

Config `wnids`: build only these classes (default: all 1,000; labels keep
their 1,000-class index). Completeness: every requested class must have its
tar, non-empty, and its members must be `<wnid>_<number>.JPEG` of that wnid;
a missing class tar fails the build, or with on_missing='skip' is left out
and counted per class (`Source.skipped`).
"""

from __future__ import annotations

import dataclasses
import os
import re

import tensorflow_datasets as tfds

from rationality_jax.data import classnames
from rationality_jax.data.builders import base
from rationality_jax.data.builders import common

IMAGES_FILE = common.ManualFile(
  ("ILSVRC2012_img_train.tar",),
  "https://image-net.org/challenges/LSVRC/2012/2012-downloads.php "
  "(registration required; ILSVRC2012_img_train.tar, 138 GB)",
)
_CLASS_TAR = re.compile(r"(?:^|/)(n\d{8})\.tar$")
_IMAGE = re.compile(r"(?:^|/)(n\d{8})_(\d+)\.JPEG$")


@dataclasses.dataclass(eq=False)
class ImagenetTrainConfig(base.MaskedBuilderConfig):
  """`wnids`: the classes to build (None: all 1,000)."""

  wnids: tuple[str, ...] | None = None


class Imagenet2012Train(base.MaskedImageBuilder):
  """ImageNet-1k training images (no masks), streamed from the nested tars."""

  name = "imagenet2012_train"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "First version."}
  BUILDER_CONFIG_CLASS = ImagenetTrainConfig
  BUILDER_CONFIGS = [ImagenetTrainConfig(name="default")]
  MANUAL_FILES = {"images": IMAGES_FILE}
  MANUAL_DOWNLOAD_INSTRUCTIONS = common.manual_instructions(MANUAL_FILES)
  DESCRIPTION = __doc__
  HOMEPAGE = "https://image-net.org/"

  # The validation set's Resize(256) + CenterCrop(224).
  STUDY_EVAL_SIZE = (256, 224)

  @classmethod
  def prompt_names(cls, names=None, readable=False, rule="study"):
    """The first WordNet synonym of each class (`classnames.imagenet_names`),
    under both rules (the release's imagenet-classes.txt agrees)."""
    del names, readable, rule
    return classnames.imagenet_names()

  def _info_features(self):
    return common.features(classnames.imagenet_wnids(), masks=False)

  def _make_splits(self, dl_manager):
    files = self._manual(dl_manager)
    all_wnids = classnames.imagenet_wnids()
    wanted = self.builder_config.wnids or tuple(all_wnids)
    unknown = sorted(set(wanted) - set(all_wnids))
    if unknown:
      raise ValueError(
        f"wnids {unknown[:3]} are not among the 1,000 ImageNet classes."
      )
    return {"train": self._generate_examples(files["images"], set(wanted))}

  def _generate_examples(self, path, wanted):
    skips = self._skips("train")
    label_of = {w: i for i, w in enumerate(classnames.imagenet_wnids())}
    found = set()
    for class_tar, outer, member in common.iter_tar_members(
      path,
      lambda n: (
        (m := _CLASS_TAR.search(n)) is not None and m.group(1) in wanted
      ),
      expect="<wnid>.tar (e.g. n01440764.tar) of a requested class",
    ):
      wnid = _CLASS_TAR.search(class_tar).group(1)
      found.add(wnid)
      for name, data in common.iter_tar(
        outer.extractfile(member),
        lambda n: _IMAGE.search(n) is not None,
        expect=f"{wnid}_<number>.JPEG inside {class_tar}",
        label=f"{os.path.basename(path)}/{class_tar}",
      ):
        if _IMAGE.search(name).group(1) != wnid:
          raise common.ArchiveLayoutError(
            f"{os.path.basename(path)}: {class_tar} holds {name}, an image "
            f"of another class (expected {wnid}_<number>.JPEG)."
          )
        try:
          image, _, _ = common.read_image(data, name)
        except Exception as e:
          skips.bad_image(f"{class_tar}/{name}", e)
          continue
        key = f"{wnid}/{os.path.basename(name).rsplit('.', 1)[0]}"
        yield key, {"image": image, "label": label_of[wnid], "id": key}
    skips.missing(
      "class archive missing",
      sorted(wanted - found),
      f"no <wnid>.tar for these classes in {os.path.basename(path)}",
    )


# The dataset this module registers (`rationality_jax.data.DATASETS`).
DATASET = Imagenet2012Train
