"""Class names for prompts and the prompt templates.

  class_names("cub_200_2011", info.features["label"].names)
      "001.Black_footed_Albatross" -> "black footed albatross"
  class_names("imagenet2012_val_masks")    first WordNet synonym per class, in
                                           the standard (sorted wnid) order
  class_names("stanford_dogs_masks", names)  "n02085620-Chihuahua" -> "chihuahua"
  class_names("caltech101_masks", names)     "Faces_easy" -> "faces_easy"
  prompts(names, "study") -> [["a photo of a black footed albatross"], ...]
  prompts(names, "clip80") -> CLIP's 80 ImageNet templates per class

Each dataset's naming rule is its builder's `prompt_names` (PAPER.md,
"Datasets and masks"): CUB folder names without the numeric prefix,
lowercased, '_' -> ' '; ImageNet the first synonym (`imagenet_names`); Dogs
and Caltech lowercased folder names (for Dogs without the wnid prefix).
`readable=True` also turns '_' into ' ' for Dogs and Caltech ("japanese
spaniel" instead of "japanese_spaniel"). `rule='release'` gives the names
the release's scripts prompted with (Dogs "n02086240-Shih-Tzu" -> "shih";
see the builders and docs/data.md).
"""

from __future__ import annotations

from collections.abc import Sequence
import functools

from rationality_jax import resources
from rationality_jax.data import datasets

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


def imagenet_names() -> list[str]:
  """The first WordNet synonym of each of the 1,000 classes, in label order
  (the study's ImageNet class names; both crane wnids are "crane")."""
  return [words[0] for _, words in imagenet_synsets()]


def class_names(
  dataset: str,
  names: Sequence[str] | None = None,
  readable: bool = False,
  rule: str = "study",
) -> list[str]:
  """Prompt class names for `dataset` from its label names: the naming rule
  its builder declares (`prompt_names`; see the module docstring)."""
  if rule not in RULES:
    raise ValueError(f"rule must be one of {RULES}, got {rule!r}.")
  builder = datasets.builder_class(dataset)
  return builder.prompt_names(names, readable=readable, rule=rule)


def prompts(names: Sequence[str], kind: str = "study") -> list[list[str]]:
  """[num_classes][num_templates] prompt strings."""
  ts = templates(kind)
  return [[t.format(n) for t in ts] for n in names]
