"""Class names for prompts and the prompt templates, with the study's naming rules.

  class_names("cub_200_2011", info.features["label"].names)
      "001.Black_footed_Albatross" -> "black footed albatross"
  class_names("imagenet2012_val_masks")    first WordNet synonym per class, in
                                           the standard (sorted wnid) order
  class_names("stanford_dogs_masks", names)  "n02085620-Chihuahua" -> "chihuahua"
  class_names("caltech101_masks", names)     "Faces_easy" -> "faces_easy"
  prompts(names, "study") -> [["a photo of a black footed albatross"], ...]
  prompts(names, "clip80") -> CLIP's 80 ImageNet templates per class

Rules (PAPER.md, "Datasets and masks"): CUB folder names without the numeric
prefix, lowercased, '_' -> ' '; ImageNet first synonym; Dogs and Caltech
lowercased folder names (for Dogs the wnid prefix "n02085620-" is not part of
the breed name and is dropped). `readable=True` also turns '_' into ' ' for
Dogs and Caltech ("japanese spaniel" instead of "japanese_spaniel").

`rule='release'` gives the names the release's scripts prompted with
(my_util.py reads datasets/Stanford_Dogs/label_dict.json and
datasets/caltech_101/label_dict.json, made by utils/Stanford_Dogs_dataset.py
and utils/caltech101_dataset.py): Dogs `folder.split('-')[1]`, '_' -> ' ',
lowercased, which cuts hyphenated breeds short ("n02086240-Shih-Tzu" ->
"shih", "n02100236-German_short-haired_pointer" -> "german short"); Caltech
the folder with '_' -> ' ', lowercased ("background google" too, with the
builder's background_class=True). CUB and ImageNet: as the study rule
(clip_zs_flcp_cub.py, datasets/IN/imagenet-classes.txt agree with it).
"""

from __future__ import annotations

from collections.abc import Sequence
import functools
import re

from rationality_jax import resources

STUDY_TEMPLATE = "a photo of a {}"


@functools.cache
def imagenet_synsets() -> tuple[tuple[str, tuple[str, ...]], ...]:
  """((wnid, (synonym, ...)), ...) for the 1,000 classes in label order."""
  path = resources.third_party("imagenet", "synset_words.txt")
  rows = []
  for line in path.read_text(encoding="utf-8").splitlines():
    wnid, words = line.split(" ", 1)
    rows.append((wnid, tuple(w.strip() for w in words.split(","))))
  if len(rows) != 1000 or [w for w, _ in rows] != sorted(w for w, _ in rows):
    raise ValueError(f"{path} must list 1,000 sorted wnids; found {len(rows)}.")
  return tuple(rows)


def imagenet_wnids() -> list[str]:
  return [w for w, _ in imagenet_synsets()]


@functools.cache
def clip_imagenet_templates() -> tuple[str, ...]:
  """CLIP's 80 ImageNet prompt templates ('{}' = class name)."""
  lines = (
    resources.third_party("clip_templates", "imagenet_templates.txt")
    .read_text(encoding="utf-8")
    .splitlines()
  )
  return tuple(line for line in lines if line)


TEMPLATE_SETS = ("study", "clip80")


def templates(kind: str = "study") -> tuple[str, ...]:
  """'study' -> ("a photo of a {}",); 'clip80' -> CLIP's 80 ImageNet templates."""
  if kind == "study":
    return (STUDY_TEMPLATE,)
  if kind == "clip80":
    return clip_imagenet_templates()
  raise ValueError(
    f"Unknown template set {kind!r}; choose 'study' or 'clip80'."
  )


RULES = ("study", "release")


def class_names(
  dataset: str,
  names: Sequence[str] | None = None,
  readable: bool = False,
  rule: str = "study",
) -> list[str]:
  """Prompt class names for `dataset` from its label names (see module doc)."""
  if rule not in RULES:
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}.")
  if dataset in (
    "imagenet2012_val_masks",
    "imagenet2012_train",
    "imagenet_c_masks",
    "imagenet",
  ):
    return [words[0] for _, words in imagenet_synsets()]
  if names is None:
    raise ValueError(
      f"class_names({dataset!r}) needs the builder's label names (info.features['label'].names)."
    )
  if dataset == "cub_200_2011":
    return [re.sub(r"^\d+\.", "", n).replace("_", " ").lower() for n in names]
  if dataset == "stanford_dogs_masks" and rule == "release":
    return [n.split("-")[1].replace("_", " ").lower() for n in names]
  if dataset == "caltech101_masks" and rule == "release":
    return [n.replace("_", " ").lower() for n in names]
  if dataset == "stanford_dogs_masks":
    out = [re.sub(r"^n\d+-", "", n).lower() for n in names]
  elif dataset == "caltech101_masks":
    out = [n.lower() for n in names]
  elif dataset == "synthetic_rationality":
    return list(names)
  else:
    raise ValueError(f"No naming rule for dataset {dataset!r}.")
  return [n.replace("_", " ") for n in out] if readable else out


def prompts(names: Sequence[str], kind: str = "study") -> list[list[str]]:
  """[num_classes][num_templates] prompt strings."""
  ts = templates(kind)
  return [[t.format(n) for t in ts] for n in names]
