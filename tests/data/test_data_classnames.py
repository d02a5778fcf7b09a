"""Class names and templates follow the study's rules and the vendored lists."""

import pathlib

import tensorflow_datasets as tfds

from rationality_jax.data import classnames


def test_imagenet_classes_in_standard_order():
  wnids = classnames.imagenet_wnids()
  tfds_labels = (
    pathlib.Path(tfds.__file__).parent
    / "datasets"
    / "imagenet2012"
    / "labels.txt"
  )
  assert wnids == tfds_labels.read_text().split()
  names = classnames.class_names("imagenet2012_val_masks")
  assert len(names) == 1000
  assert (
    names[0] == "tench"
    and names[2] == "great white shark"
    and names[999] == "toilet tissue"
  )
  assert names[134] == names[517] == "crane"
  assert names[wnids.index("n02099601")] == "golden retriever"


def test_dataset_naming_rules():
  assert classnames.class_names(
    "cub_200_2011", ["001.Black_footed_Albatross", "200.Common_Yellowthroat"]
  ) == ["black footed albatross", "common yellowthroat"]
  dogs = ["n02085620-Chihuahua", "n02085782-Japanese_spaniel"]
  assert classnames.class_names("stanford_dogs_masks", dogs) == [
    "chihuahua",
    "japanese_spaniel",
  ]
  assert classnames.class_names("stanford_dogs_masks", dogs, readable=True) == [
    "chihuahua",
    "japanese spaniel",
  ]
  assert classnames.class_names(
    "caltech101_masks", ["Faces_easy", "airplanes"]
  ) == ["faces_easy", "airplanes"]


def test_release_naming_rule():
  # The release's label_dict.json values for these folders.
  dogs = {
    "n02085782-Japanese_spaniel": "japanese spaniel",
    "n02086240-Shih-Tzu": "shih",
    "n02089078-black-and-tan_coonhound": "black",
    "n02095314-wire-haired_fox_terrier": "wire",
    "n02098105-soft-coated_wheaten_terrier": "soft",
    "n02099267-flat-coated_retriever": "flat",
    "n02099429-curly-coated_retriever": "curly",
    "n02100236-German_short-haired_pointer": "german short",
  }
  assert classnames.class_names(
    "stanford_dogs_masks", list(dogs), rule="release"
  ) == list(dogs.values())
  assert classnames.class_names(
    "caltech101_masks",
    ["BACKGROUND_Google", "Faces_easy", "car_side", "ant"],
    rule="release",
  ) == ["background google", "faces easy", "car side", "ant"]
  cub = ["001.Black_footed_Albatross"]
  assert classnames.class_names(
    "cub_200_2011", cub, rule="release"
  ) == classnames.class_names("cub_200_2011", cub)
  assert classnames.class_names(
    "imagenet2012_train", rule="release"
  ) == classnames.class_names("imagenet2012_val_masks")


def test_templates():
  clip = classnames.templates("clip80")
  assert len(clip) == 80 and len(set(clip)) == 80
  assert clip[0] == "a bad photo of a {}." and clip[-1] == "a tattoo of the {}."
  assert all(t.count("{}") == 1 for t in clip)
  assert classnames.prompts(["tench", "goldfish"]) == [
    ["a photo of a tench"],
    ["a photo of a goldfish"],
  ]
  assert classnames.prompts(["x"], "clip80")[0][39] == "a photo of a x."
