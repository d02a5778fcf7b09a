"""BLIP and ALBEF (ITC path): parity with transformers references.

* HF ``BlipForImageTextRetrieval`` (``use_itm_head=False``: cosine of
  normalised ``vision_proj``/``text_proj`` of the CLS outputs) and HF ``BlipModel``.
* Original BLIP ``.pth``: the HF weights renamed to BLIP's keys (timm ViT,
  BERT), plus momentum copies, queues, decoder and ITM head to be ignored.
* ALBEF ``.pth``: the text tower is a HF ``BertModel`` with ``fusion_layer`` =
  6 text layers (its keys, with token types, plus fusion layers 6.. with
  cross-attention that the ITC path must ignore); the image tower is HF
  ``BlipVisionModel`` with LayerNorm eps 1e-6 (timm's ViT: fused qkv, exact
  GELU, pre-LN), renamed to timm keys.
"""

import numpy as np
import pytest
import torch
import transformers

from rationality_jax import models

TOLERANCE = 1e-4
TEMP = 0.05


def padded_ids(batch_rows):
  ids = np.zeros((len(batch_rows), max(map(len, batch_rows))), np.int64)
  mask = np.zeros_like(ids)
  for row, tokens in enumerate(batch_rows):
    ids[row, : len(tokens)] = tokens
    mask[row, : len(tokens)] = 1
  return ids, mask


TINY_IDS, TINY_MASK = padded_ids(
  [[3, 5, 6, 98], [3, 7, 8, 9, 10, 11, 98], [3, 98]]
)


def flax_itc(module, params, images_nhwc, ids, mask):
  """One apply: projected image and text embeddings, and `__call__`'s logits."""

  def outputs(model, images, ids, mask):
    return (
      model.encode_image(images),
      model.encode_text(ids, mask),
      model(images, ids, mask),
    )

  return module.apply(
    {"params": params}, images_nhwc, ids, mask, method=outputs
  )


def assert_itc_parity(
  ref, label, ours, expected_image, expected_text, expected_cosine
):
  image, text, logits = ours
  errors = {
    "image": ref.max_abs(image, expected_image),
    "text": ref.max_abs(text, expected_text),
    "logits": ref.max_abs(logits, expected_cosine / TEMP),
  }
  print(
    f"\n{label} max abs errors: "
    + ", ".join(f"{k} {v:.2e}" for k, v in errors.items())
  )
  assert max(errors.values()) <= TOLERANCE, errors


def hf_retrieval_reference(model, images, ids, mask):
  """One HF forward (``use_itm_head=False``): projected CLS embeddings and the ITC
  output, which is the cosine of their normalised versions (no temperature)."""
  with torch.no_grad():
    out = model(
      input_ids=torch.tensor(ids),
      pixel_values=torch.tensor(images),
      attention_mask=torch.tensor(mask),
      use_itm_head=False,
    )
    image = model.vision_proj(out.last_hidden_state[:, 0])
    text = model.text_proj(out.question_embeds[:, 0])
  return image, text, out.itm_score


def test_tiny_hf_blip_retrieval_matches_transformers(ref, tiny_blip):
  model, directory = tiny_blip
  module, params = models.load(directory, temp=TEMP)
  assert module.config.family == "blip" and module.config.logit == "temp"
  images, images_nhwc = ref.random_images(np.random.RandomState(0), 2, 32)
  assert_itc_parity(
    ref,
    "tiny HF BlipForImageTextRetrieval",
    flax_itc(module, params, images_nhwc, TINY_IDS, TINY_MASK),
    *hf_retrieval_reference(model, images, TINY_IDS, TINY_MASK),
  )


def test_blip_temperature_is_clamped(tiny_blip, ref):
  _, directory = tiny_blip
  _images, images_nhwc = ref.random_images(np.random.RandomState(0), 1, 32)
  module, params = models.load(directory, temp=1e-5)
  low = module.apply({"params": params}, images_nhwc, TINY_IDS, TINY_MASK)
  module, params = models.load(directory, temp=0.001)
  np.testing.assert_allclose(
    low,
    module.apply({"params": params}, images_nhwc, TINY_IDS, TINY_MASK),
    rtol=1e-6,
  )
  assert float(np.abs(low).max()) > 1.0  # cosine / 0.001 is not the cosine


def test_tiny_hf_blip_model_matches_transformers(ref, tmp_path):
  directory = str(tmp_path / "blip_model")
  model = ref.make_blip(directory, cls=transformers.BlipModel)
  module, params = models.load(directory)
  assert module.config.text_pooler and module.config.logit == "logit_scale"
  images, images_nhwc = ref.random_images(np.random.RandomState(0), 2, 32)
  with torch.no_grad():
    out = model(
      input_ids=torch.tensor(TINY_IDS),
      pixel_values=torch.tensor(images),
      attention_mask=torch.tensor(TINY_MASK),
    )
  image, text, logits = flax_itc(
    module, params, images_nhwc, TINY_IDS, TINY_MASK
  )
  errors = [
    ref.max_abs(models.normalize(image), out.image_embeds),
    ref.max_abs(models.normalize(text), out.text_embeds),
    ref.max_abs(logits, out.logits_per_image),
  ]
  print(f"\ntiny HF BlipModel max abs errors (image, text, logits): {errors}")
  assert max(errors) <= TOLERANCE


def test_original_blip_pth_matches_transformers(ref, tiny_blip, tmp_path):
  model, _ = tiny_blip
  hf_state = model.state_dict()
  state = ref.hf_blip_vision_to_timm(hf_state)
  state.update(
    {k: v for k, v in hf_state.items() if k.startswith("text_encoder.")}
  )
  state.update(
    {
      k: hf_state[k]
      for k in (
        "vision_proj.weight",
        "vision_proj.bias",
        "text_proj.weight",
        "text_proj.bias",
      )
    }
  )
  state["temp"] = torch.tensor(TEMP)
  state["text_encoder.embeddings.position_ids"] = torch.arange(40)[None]
  state.update(ref.momentum_and_queues(state, 16))
  state["text_decoder.bert.embeddings.word_embeddings.weight"] = torch.randn(
    99, 128
  )
  path = str(tmp_path / "model_base.pth")
  torch.save({"model": state, "epoch": 3}, path)
  module, params = models.load(path)
  assert module.config.family == "blip" and module.config.text.depth == 2
  assert module.config.text.type_vocab_size == 0
  assert module.config.vision.layer_norm_eps == 1e-6
  images, images_nhwc = ref.random_images(np.random.RandomState(0), 2, 32)
  assert_itc_parity(
    ref,
    "original BLIP .pth layout",
    flax_itc(module, params, images_nhwc, TINY_IDS, TINY_MASK),
    *hf_retrieval_reference(model, images, TINY_IDS, TINY_MASK),
  )


def make_albef_reference(ref, text_prefix, seed=0):
  """(BertModel 2 text layers, BlipVisionModel eps 1e-6, projections, ALBEF state)."""
  rng = ref.seeded(seed)
  bert = transformers.BertModel(
    transformers.BertConfig(
      **dict(
        ref.TINY_BERT,
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=1,
      )
    ),
    add_pooling_layer=False,
  ).eval()
  vision = transformers.BlipVisionModel(
    transformers.BlipVisionConfig(
      **dict(
        ref.TINY_VISION,
        hidden_size=64,
        num_attention_heads=1,
        layer_norm_eps=1e-6,
      )
    )
  ).eval()
  with torch.no_grad():
    for name, param in list(bert.named_parameters()) + list(
      vision.named_parameters()
    ):
      if "LayerNorm" in name or "layer_norm" in name or "layernorm" in name:
        param.add_(0.1 * torch.randn_like(param))
  vision_proj, text_proj = torch.nn.Linear(64, 16), torch.nn.Linear(64, 16)
  state = ref.hf_blip_vision_to_timm(vision.state_dict(), prefix="")
  state.update({text_prefix + k: v for k, v in bert.state_dict().items()})
  # Fusion layers (fusion_layer = 2 here, 6 in ALBEF): self-attention +
  # cross-attention + MLP, unused by the ITC path.
  fusion = transformers.BertModel(
    transformers.BertConfig(
      **dict(
        ref.TINY_BERT,
        num_hidden_layers=2,
        hidden_size=64,
        num_attention_heads=1,
        is_decoder=True,
        add_cross_attention=True,
      )
    ),
    add_pooling_layer=False,
  )
  for key, value in fusion.state_dict().items():
    if key.startswith("encoder.layer."):
      i, rest = key[len("encoder.layer.") :].split(".", 1)
      state[f"{text_prefix}encoder.layer.{int(i) + 2}.{rest}"] = value
  assert any("crossattention" in k for k in state)
  for name, layer in (("vision_proj", vision_proj), ("text_proj", text_proj)):
    state[name + ".weight"], state[name + ".bias"] = (
      layer.weight.data,
      layer.bias.data,
    )
  state["temp"] = torch.tensor(TEMP)
  state.update(ref.momentum_and_queues(state, 16))
  if text_prefix.endswith("bert."):
    state["text_encoder.cls.predictions.bias"] = torch.randn(99)
  return bert, vision, vision_proj, text_proj, state, rng


@pytest.mark.parametrize("text_prefix", ["text_encoder.", "text_encoder.bert."])
def test_albef_pth_matches_bert_and_timm_vit(ref, tmp_path, text_prefix):
  bert, vision, vision_proj, text_proj, state, rng = make_albef_reference(
    ref, text_prefix
  )
  path = str(tmp_path / "ALBEF.pth")
  torch.save({"model": state, "config": {"fusion_layer": 2}}, path)
  module, params = models.load(path)
  assert module.config.family == "albef"
  assert (
    module.config.text.depth == 2 and module.config.text.type_vocab_size == 2
  )
  images, images_nhwc = ref.random_images(rng, 2, 32)
  ids, mask = torch.tensor(TINY_IDS), torch.tensor(TINY_MASK)
  with torch.no_grad():
    image = vision_proj(vision(pixel_values=torch.tensor(images))[0][:, 0])
    text = text_proj(bert(input_ids=ids, attention_mask=mask)[0][:, 0])
    cosine = (
      torch.nn.functional.normalize(image, dim=-1)
      @ torch.nn.functional.normalize(text, dim=-1).T
    )
  assert_itc_parity(
    ref,
    f"ALBEF .pth ({text_prefix})",
    flax_itc(module, params, images_nhwc, TINY_IDS, TINY_MASK),
    image,
    text,
    cosine,
  )
  cls = module.apply(
    {"params": params}, images_nhwc, project=False, method="encode_image"
  )
  with torch.no_grad():
    assert (
      ref.max_abs(cls, vision(pixel_values=torch.tensor(images))[0][:, 0])
      <= TOLERANCE
    )


def test_blip_384_checkpoint_at_224_matches_hf_interpolation(ref, tmp_path):
  directory = str(tmp_path / "blip_48")
  model = ref.make_blip(
    directory, vision=dict(ref.HEAD_DIM_64_VISION, image_size=48)
  )
  module, params = models.load(directory, image_size=32, temp=TEMP)
  assert params["vision"]["pos_embedding"].shape == (17, 128)
  images, images_nhwc = ref.random_images(np.random.RandomState(0), 2, 32)
  with torch.no_grad():
    expected = model.vision_proj(
      model.vision_model(
        pixel_values=torch.tensor(images), interpolate_pos_encoding=True
      )[0][:, 0]
    )
  got = module.apply({"params": params}, images_nhwc, method="encode_image")
  error = ref.max_abs(got, expected)
  print(f"\ntiny BLIP 48 -> 32 px interpolation: max abs error {error:.2e}")
  assert error <= TOLERANCE


@pytest.mark.slow
def test_full_size_blip_retrieval_matches_transformers(ref, tmp_path):
  directory = str(tmp_path / "blip_base")
  model = ref.make_blip(directory, vision=dict(), text=dict(), embed_dim=256)
  module, params = models.load(directory, temp=TEMP)
  assert (
    module.config.vision.image_size == 384
    and module.config.text.vocab_size == 30524
  )
  ids, mask = models.tokenizer("blip")(
    ["a photo of a cat", "a dog running on the grass"]
  )
  images, images_nhwc = ref.random_images(np.random.RandomState(0), 2, 384)
  assert_itc_parity(
    ref,
    "full-size HF BlipForImageTextRetrieval (384 px)",
    flax_itc(module, params, images_nhwc, ids, mask),
    *hf_retrieval_reference(
      model, images, ids.astype(np.int64), mask.astype(np.int64)
    ),
  )


def test_bert_tokenizers():
  ids, mask = models.tokenizer("albef")(["a photo of a cat"])
  assert ids.shape == (1, 30)
  np.testing.assert_array_equal(
    ids[0, :7], [101, 1037, 6302, 1997, 1037, 4937, 102]
  )
  assert mask.sum() == 7 and ids[0, 7:].sum() == 0
  blip = models.tokenizer("blip")
  assert (
    blip.vocab_size == 30524 and models.tokenizer("albef").vocab_size == 30522
  )
  ids, _ = blip(["[ENC] a photo"])
  assert ids.shape == (1, 35)
  np.testing.assert_array_equal(ids[0, :5], [101, 30523, 1037, 6302, 102])
