"""BLIP (HF layouts): parity with transformers references; the BERT tokenizers.

* HF ``BlipForImageTextRetrieval`` (``use_itm_head=False``: cosine of
  normalized ``vision_proj``/``text_proj`` of the CLS outputs) and HF ``BlipModel``.

The original ``.pth`` layouts of BLIP and ALBEF are tested on the checkpoint
factories (test_models_factories.py).
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


def test_tiny_hf_blip_retrieval_matches_transformers(ref, tiny_blip):
  model, directory = tiny_blip
  module, params = models.load(directory, temp=TEMP)
  assert module.config.family == "blip" and module.config.logit == "temp"
  images, images_nhwc = ref.random_images(np.random.RandomState(0), 2, 32)
  assert_itc_parity(
    ref,
    "tiny HF BlipForImageTextRetrieval",
    flax_itc(module, params, images_nhwc, TINY_IDS, TINY_MASK),
    *ref.hf_retrieval_reference(model, images, TINY_IDS, TINY_MASK),
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
    *ref.hf_retrieval_reference(
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
