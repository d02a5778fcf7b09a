"""The family plug-ins: their defaults, tokenizers, random inits, spec errors,
and the methods that ask them (LP feature, FLCP temperature, logit caps)."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from rationality_jax import models
from rationality_jax.methods import base as methods_base
from rationality_jax.methods import lp
from rationality_jax.models import families
from rationality_jax.models.families import clip


def test_registry_lists_the_three_families_and_their_layouts():
  assert list(families.FAMILIES) == ["clip", "albef", "blip"]
  assert sorted(families.LAYOUTS) == [
    "albef",
    "blip",
    "hf_blip",
    "hf_blip_retrieval",
    "hf_clip",
    "openai_clip",
  ]
  for layout in families.LAYOUTS.values():
    assert layout.name in {x.name for x in models.family(layout.family).layouts}


def test_family_defaults_are_the_studys():
  from rationality_jax.data.preprocess import NORMALIZATION

  expected = {
    "clip": ("embedding", 0.07),
    "albef": ("cls", 0.0),
    "blip": ("cls", 0.0),
  }
  for name, (feature, temperature) in expected.items():
    family = models.family(name)
    assert family.name == name
    assert family.normalization == "clip" and "clip" in NORMALIZATION
    assert family.lp_feature == feature
    assert family.flcp_temperature == temperature


def test_family_of_a_config_and_unknown_names():
  config = families.ARCHITECTURES["tiny"]
  assert models.family(config) is models.family("clip")
  with pytest.raises(ValueError, match="unknown model family 'siglip'"):
    models.family("siglip")


def test_tokenizer_lengths_follow_the_family():
  demo = families.ARCHITECTURES["demo"]  # CLIP text with 16 positions
  assert models.family("clip").tokenizer(demo).context_length == 16
  assert models.family("clip").tokenizer().context_length == 77
  assert models.family("albef").tokenizer(demo).context_length == 30
  assert models.family("blip").tokenizer().context_length == 35
  ids, mask = models.family("clip").tokenizer(demo)(["a photo of a cat"])
  assert ids.shape == (1, 16) and mask.sum() == 7
  assert models.tokenizer("clip", 16) is models.family("clip").tokenizer(demo)


@pytest.mark.parametrize("arch", ["tiny", "demo", "b16", "b32"])
def test_random_architectures_match_the_size_table(arch):
  expected = clip.vlm_config(**clip.ARCHITECTURES[arch])
  assert families.ARCHITECTURES[arch] == expected
  assert expected.family == "clip"


def test_random_init_is_seeded():
  module, params = models.load("random:tiny")
  assert module.config == families.ARCHITECTURES["tiny"]
  _, same = models.load("random:tiny", seed=0)
  _, other = models.load("random:tiny", seed=1)
  leaves = jax.tree.leaves(params)
  assert all(
    np.array_equal(a, b) for a, b in zip(leaves, jax.tree.leaves(same))
  )
  assert not np.array_equal(
    params["vision"]["cls_token"], other["vision"]["cls_token"]
  )
  assert models.identity("random:tiny", seed=3) == {
    "kind": "random",
    "arch": "tiny",
    "seed": 3,
  }


@pytest.mark.parametrize(
  "spec,message",
  [
    ("", r"model spec '': it is empty.*random:<arch>"),
    ("random:huge", r"'random:huge'.*\['b16', 'b32', 'demo', 'tiny'\]"),
    ("ckpt/ALBEF.pth", r"'ckpt/ALBEF.pth': no such file.*openai/clip-vit"),
  ],
)
def test_unknown_specs_name_the_spec_and_the_accepted_forms(spec, message):
  with pytest.raises(models.CheckpointError, match=message):
    models.load(spec)
  with pytest.raises(models.CheckpointError, match=message):
    models.identity(spec)


def method_config(feature="auto", temperature=-1.0):
  return ml_collections.ConfigDict(
    dict(
      lp=dict(feature=feature),
      flcp=dict(temperature=temperature, temp_range=(0.01, 0.2)),
    )
  )


@pytest.mark.parametrize(
  "family,feature,temperature",
  [("clip", "embedding", 0.07), ("albef", "cls", 0.0), ("blip", "cls", 0.0)],
)
def test_methods_take_their_defaults_from_the_family(
  family, feature, temperature
):
  config = families.ARCHITECTURES["tiny"]
  config = type(config)(**{**config.__dict__, "family": family})
  module = models.VisionLanguageModel(config)
  assert lp.feature(module, method_config()) == feature
  assert lp.feature(module, method_config("cls")) == "cls"
  assert methods_base.fixed_temperature(method_config(), config) == temperature
  assert methods_base.fixed_temperature(method_config(temperature=0.5), config)


def test_logit_multiplier_caps_for_training():
  module, params = models.load("random:tiny")
  params = {**params, "logit_scale": jnp.float32(np.log(500.0))}
  variables = {"params": params}
  free = module.apply(variables, method="logit_multiplier")
  capped = module.apply(variables, max_scale=100.0, method="logit_multiplier")
  np.testing.assert_allclose([free, capped], [500.0, 100.0], rtol=1e-5)
  config = models.VLMConfig(
    family="blip",
    vision=module.config.vision,
    text=module.config.text,
    embed_dim=16,
    projection_bias=True,
    logit="temp",
    temp_range=(0.001, 0.5),
  )
  temp_model = models.VisionLanguageModel(config)
  temp_params = {**params, "temp": jnp.float32(0.9)}
  del temp_params["logit_scale"]
  variables = {"params": temp_params}
  own = temp_model.apply(variables, method="logit_multiplier")
  trained = temp_model.apply(
    variables, temp_range=(0.01, 0.2), method="logit_multiplier"
  )
  np.testing.assert_allclose([own, trained], [2.0, 5.0], rtol=1e-6)
