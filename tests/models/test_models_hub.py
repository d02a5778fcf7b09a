"""Hub ids resolve through huggingface_hub's cache, offline (no network here):
a fake cache laid out as huggingface_hub lays it out, under HF_HUB_CACHE."""

import numpy as np
import pytest

from rationality_jax import models
from tests import checkpoint_factories as factories

HUB_ID = "openai/clip-vit-base-patch16"


@pytest.fixture(scope="module")
def cached_clip(tmp_path_factory):
  """(Made, cache dir, snapshot dir) of a tiny HF CLIP cached as HUB_ID."""
  made = factories.hf_clip(tmp_path_factory.mktemp("clip"))
  cache = tmp_path_factory.mktemp("hub")
  snapshot = factories.hub_cache(cache, HUB_ID, made.path, revision="a" * 40)
  return made, str(cache), snapshot


@pytest.fixture
def offline_cache(cached_clip, monkeypatch):
  monkeypatch.setenv("HF_HUB_CACHE", cached_clip[1])
  monkeypatch.setenv("HF_HUB_OFFLINE", "1")
  return cached_clip


def test_hub_id_loads_the_cached_snapshot(offline_cache):
  made, _, _ = offline_cache
  module, params = models.load(HUB_ID)
  ids, mask = models.family(module.config).tokenizer(module.config)(
    ["a photo of a cat"]
  )
  images, images_nhwc = factories.random_images(
    np.random.RandomState(0), 1, 224
  )
  image = module.apply({"params": params}, images_nhwc, method="encode_image")
  text = module.apply({"params": params}, ids, mask, method="encode_text")
  expected_image, expected_text, _ = made.reference(images, ids, mask)
  assert factories.max_abs(image, expected_image) <= 1e-4
  assert factories.max_abs(text, expected_text) <= 1e-4


def test_hub_identity_names_the_snapshot(offline_cache):
  _, _, snapshot = offline_cache
  identity = models.identity(HUB_ID)
  assert identity["kind"] == "hub" and identity["hub_id"] == HUB_ID
  assert identity["revision"] == "a" * 40
  assert identity["path"] == snapshot
  assert sorted(identity["files"]) == ["config.json", "model.safetensors"]


def test_uncached_hub_id_offline_says_how_to_fetch_it(offline_cache):
  hub_id = "openai/clip-vit-base-patch32"  # listed by the family, not cached
  for call in (models.load, models.identity):
    with pytest.raises(models.CheckpointError) as error:
      call(hub_id)
    message = str(error.value)
    assert repr(hub_id) in message
    assert f"huggingface-cli download {hub_id}" in message
    assert "HF_HUB_OFFLINE=0" in message


def test_every_family_lists_its_hub_ids():
  assert models.family("clip").hub_ids == (
    "openai/clip-vit-base-patch16",
    "openai/clip-vit-base-patch32",
  )
  assert "Salesforce/blip-itm-base-coco" in models.family("blip").hub_ids
  assert models.family("albef").hub_ids == ()  # no official hub copy
