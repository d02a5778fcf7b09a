"""The base builder: every example checked before TFDS stores it, skips
counted, and the facts about its dataset each builder declares for the study
(class names, evaluation geometry, table key, grid entry: `MaskedImageBuilder`).

Completeness: every builder checks that what its annotation files list was
found in the archives, and that its annotations give boxes. Anything left
out - by a policy, `on_bad_image`, `on_missing` or `on_bad_annotation`, set
to 'skip' - is recorded per split and reason in the
dataset's metadata (`Source.skipped` reads it back); with the default 'fail'
the build stops and names what is missing. Every example is checked before
TFDS stores it (`InvalidExampleError`: label out of range, malformed field),
with a short message naming its id.

TFDS writes a split into `<name>/<config>/<version>.incomplete*` and renames it
only when everything succeeded, so a failed build leaves what was already
prepared untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import dataclasses
import logging
from typing import Any

import tensorflow_datasets as tfds

from rationality_jax import console
from rationality_jax.data.builders import common

POLICIES = ("fail", "skip")
UNREADABLE = "unreadable image"


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
  on_bad_annotation: str = "fail"

  def bad_image(self, name: str, error: Exception) -> None:
    """An image that does not decode: raise ('fail') or record it ('skip')."""
    if self.on_bad_image == "fail":
      raise common.UnreadableImageError(
        f"Cannot decode image {name!r} ({error}). Re-download the archive, "
        "or build with on_bad_image='skip' to leave it out (skipped files "
        "are counted in the dataset's metadata and in Source.skipped)."
      ) from error
    logging.warning("Skipping unreadable image %s: %s", name, error)
    self.items.setdefault(UNREADABLE, []).append(name)

  def bad_annotation(
    self, reason: str, name: str, problem: str, where: str = ""
  ) -> None:
    """An annotation (file `name`, in archive `where`) that cannot be read
    or gives no box (`common.box_problem`): raise one line naming it and
    the box ('fail') or record `name` under `reason` ('skip'); the caller
    then leaves its image out."""
    named = f"{where}: {name}" if where else name
    if self.on_bad_annotation == "fail":
      raise common.InvalidAnnotationError(
        f"{self.dataset} ({self.split}): {named}: {problem}. Fix the "
        "annotation, or build with on_bad_annotation='skip' to leave its "
        "image out (counted in Source.skipped)."
      )
    logging.warning("Skipping the image of %s: %s", named, problem)
    self.items.setdefault(reason, []).append(name)

  def missing(self, reason: str, names, where: str) -> None:
    """Items one source lists and another lacks (an image its annotation
    files list, an annotation an image needs), described by `where`:
    'fail' raises naming them, 'skip' records them under `reason`."""
    names = sorted(names)
    if not names:
      return
    if self.on_missing == "fail":
      raise common.ManualFilesMissingError(
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


@dataclasses.dataclass(eq=False)
class MaskedBuilderConfig(tfds.core.BuilderConfig):
  """Policies (each 'fail' by default, or 'skip': leave out and count):

  `on_bad_image`: an image that does not decode.
  `on_missing`: an item the annotation files list that the archives lack
    (image, segmentation, annotation, boxes).
  `on_bad_annotation`: an annotation that cannot be read, or a box with a
    coordinate that is not a number or that is inverted (its image is left
    out under 'skip').
  What was skipped is saved in metadata['skipped'][split] = {reason: [names]}
  ('before_split' for items dropped before splits are assigned) and read
  back as counts by `Source.skipped`.
  """

  on_bad_image: str = "fail"
  on_missing: str = "fail"
  on_bad_annotation: str = "fail"


BEFORE_SPLIT = "before_split"


@dataclasses.dataclass(frozen=True)
class StudyDataset:
  """How the study's grids train and evaluate on a dataset, declared by the
  builder evaluated on and keyed by its `REPORT_KEY` (`data.study_datasets`,
  `configs/common.dataset`).

  Attributes:
    train_split: the split trained on.
    eval_split: the split of the declaring builder evaluated on.
    train_builder: the builder trained on; '' for the declaring builder
      (ImageNet trains on imagenet2012_train).
    builder_kwargs: builder options of the grids' entry (the synthetic
      benchmark's size and shortcut); a grid's own options go over them.
  """

  train_split: str = "train"
  eval_split: str = "test"
  train_builder: str = ""
  builder_kwargs: Mapping[str, Any] = dataclasses.field(default_factory=dict)


class MaskedImageBuilder(tfds.core.GeneratorBasedBuilder):
  """Base of the dataset builders (manual archives or generated, array_record).

  Subclasses implement `_info_features`, `_make_splits(dl_manager) ->
  {split: examples}` and `_generate_examples` (which `_make_splits` calls);
  every split is checked on its way to TFDS (`_checked`).

  A builder also declares what the study needs to know about its dataset,
  each fact here and nowhere else (`rationality_jax.data` reads them; the
  defaults suit a dataset outside the study):

  * `prompt_names(names, readable, rule)`: the class names prompts use
    (`data.class_names`); default the label names as they are.
  * `STUDY_EVAL_SIZE`, `release_eval_geometry(resize, crop)`,
    `RELEASE_MASK_RESIZE`, `RELEASE_ONLY_FIELDS`: the study's evaluation geometry
    (`preprocess.study_spec`); default resize(224)|center_crop(224), the
    mask moved with the image under either mask order.
  * `REPORT_KEY`: the dataset's key in the study's tables
    (`data.report_key`); default its name.
  * `STUDY`: how the study's grids train and evaluate on it under that key
    (`StudyDataset`, `data.study_datasets`); default None, not a grid
    dataset of its own.
  """

  # The dataset's key in the study's tables (None: the builder's name).
  REPORT_KEY: str | None = None
  # How the study's grids train and evaluate on it (None: they do not).
  STUDY: StudyDataset | None = None

  # (resize, crop) of the study's evaluation at 224 px (`study_spec` scales
  # it for other sizes).
  STUDY_EVAL_SIZE: tuple[int, int] = (224, 224)
  # Fields only the release's masks read (CUB's soft segmentation): the
  # study's other specs drop them first, so no op works on an unused field.
  RELEASE_ONLY_FIELDS: tuple[str, ...] = ()
  # How the release resized the mask where it differs from ours (a `resize`
  # mask_method, e.g. 'bilinear'); None: as the image's geometry moves it.
  RELEASE_MASK_RESIZE: str | None = None

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

  @classmethod
  def prompt_names(
    cls,
    names: Sequence[str] | None = None,
    readable: bool = False,
    rule: str = "study",
  ) -> list[str]:
    """The class names prompts use, from the label names (`data.class_names`).

    `rule`: 'study' (PAPER.md, "Datasets and masks") or 'release' (the
    names the release's scripts prompted with); `readable=True` also turns
    '_' into ' ' where the study's names keep it. By default the label
    names as they are, under either rule.
    """
    del readable, rule
    return list(cls._label_names(names))

  @classmethod
  def release_eval_geometry(cls, resize: int, crop: int) -> str:
    """The evaluation geometry with the masks made as the release made them
    (`study_spec(..., mask_order='release')`), a spec string before
    `normalize`. By default as 'ours': the mask moves with the image, resized
    by `RELEASE_MASK_RESIZE` where the release resized it otherwise."""
    if cls.RELEASE_MASK_RESIZE:
      return (
        f"resize({resize}, mask_method={cls.RELEASE_MASK_RESIZE!r})|"
        f"center_crop({crop})"
      )
    return f"resize({resize})|center_crop({crop})"

  @classmethod
  def _label_names(cls, names: Sequence[str] | None) -> Sequence[str]:
    """`names`, which a naming rule needs (the builder's label names)."""
    if names is None:
      raise ValueError(
        f"class_names({cls.name!r}) needs the builder's label names "
        "(info.features['label'].names)."
      )
    return names

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
    check_policy("on_bad_annotation", c.on_bad_annotation)
    self.info.metadata["skipped"] = {}
    splits = self._make_splits(dl_manager)
    # What is left out before splits are assigned is known now: an empty
    # entry is not kept.
    if not self.info.metadata["skipped"].get(BEFORE_SPLIT, True):
      del self.info.metadata["skipped"][BEFORE_SPLIT]
    return {s: self._checked(s, examples) for s, examples in splits.items()}

  def _skips(self, split: str) -> Skips:
    """The Skips of `split` (or BEFORE_SPLIT), registered in the metadata."""
    c = self.builder_config
    skipped = self.info.metadata.setdefault("skipped", {})
    if split not in skipped:
      skipped[split] = {}
    return Skips(
      self.name,
      split,
      c.on_bad_image,
      c.on_missing,
      skipped[split],
      c.on_bad_annotation,
    )

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
          raise common.InvalidExampleError(
            f"{self.name}: {split} example {example['id']!r} has label "
            f"{label}, but there are {num_classes} classes (labels "
            f"0..{num_classes - 1}): the annotation files' labels and class "
            "list disagree."
          )
        try:
          features.encode_example(example)
        except Exception as e:  # Any encoding error is reported the same way.
          message = " ".join(str(e).split())
          raise common.InvalidExampleError(
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
      raise common.InvalidExampleError(
        f"{self.name}: the {split} split has no examples; left out by the "
        f"skip policies: {left_out or 'nothing'}."
      )

  def _manual(self, dl_manager) -> dict[str, str]:
    try:
      manual_dir = dl_manager.manual_dir  # TFDS asserts that it exists.
    except AssertionError:
      manual_dir = None
    return common.require_manual_files(self.name, manual_dir, self.MANUAL_FILES)
