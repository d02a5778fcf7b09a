"""CLIP: parity with transformers CLIPModel (HF directory and OpenAI .pt layouts)."""

import numpy as np
import pytest
import torch

from rationality_jax import models

TOLERANCE = 1e-4  # max abs error, float32


def hf_clip_outputs(model, images, token_ids):
  """One HF forward: raw projected embeddings, normalized ones, logits_per_image.

  (transformers 5 returns get_image/text_features' outputs as the towers' outputs:
  their pooler_output is the projected, un-normalized embedding.)
  """
  with torch.no_grad():
    out = model(
      pixel_values=torch.tensor(images), input_ids=torch.tensor(token_ids)
    )
  return (
    out.vision_model_output.pooler_output,
    out.text_model_output.pooler_output,
    out.image_embeds,
    out.text_embeds,
    out.logits_per_image,
  )


def flax_clip_outputs(module, params, images_nhwc, token_ids):
  """One apply: raw embeddings, normalized ones, and logits from `__call__`."""

  def outputs(model, images, token_ids):
    image, text = model.encode_image(images), model.encode_text(token_ids)
    return (
      image,
      text,
      models.normalize(image),
      models.normalize(text),
      model(images, token_ids),
    )

  return module.apply(
    {"params": params}, images_nhwc, token_ids, method=outputs
  )


def assert_clip_parity(ref, model, module, params, size, token_ids, label):
  images, images_nhwc = ref.random_images(np.random.RandomState(1), 3, size)
  expected = hf_clip_outputs(model, images, token_ids)
  got = flax_clip_outputs(module, params, images_nhwc, token_ids)
  names = ("image", "text", "image_normed", "text_normed", "logits")
  errors = {name: ref.max_abs(a, b) for name, a, b in zip(names, got, expected)}
  print(
    f"\n{label} max abs errors: "
    + ", ".join(f"{k} {v:.2e}" for k, v in errors.items())
  )
  assert max(errors.values()) <= TOLERANCE, errors
  return errors


TINY_IDS = np.array([[97, 5, 6, 98, 1, 1], [97, 7, 8, 9, 10, 98]])


def test_tiny_hf_clip_matches_transformers(ref, tiny_clip):
  model, directory = tiny_clip
  module, params = models.load(directory)
  assert module.config.family == "clip"
  assert module.config.text.eot_token_id == 98
  assert_clip_parity(
    ref, model, module, params, 32, TINY_IDS, "tiny CLIP (HF dir)"
  )


def test_openai_state_dict_and_torchscript_match_transformers(
  ref, head_dim_64_clip, tmp_path
):
  model, _ = head_dim_64_clip
  openai_state = ref.hf_clip_to_openai(model.state_dict())
  plain = str(tmp_path / "ViT-tiny.pt")
  torch.save(openai_state, plain)
  scripted = str(tmp_path / "ViT-tiny-jit.pt")
  ref.write_openai_torchscript(openai_state, scripted, fp16=False)
  # OpenAI pools at argmax(ids): make the end-of-text token the largest id.
  token_ids = np.array([[97, 5, 6, 98, 0, 0], [97, 7, 8, 9, 10, 98]])
  for path in (plain, scripted):
    module, params = models.load(path)
    assert module.config.text.eot_token_id is None
    assert (
      module.config.vision.image_size == 32
      and module.config.vision.patch_size == 8
    )
    assert_clip_parity(
      ref, model, module, params, 32, token_ids, f"OpenAI layout {path}"
    )


def test_resized_positions_match_hf_interpolate_pos_encoding(ref, tiny_clip):
  model, directory = tiny_clip
  module, params = models.load(directory, image_size=48)  # grid 4x4 -> 6x6
  assert params["vision"]["pos_embedding"].shape == (37, 32)
  images, images_nhwc = ref.random_images(np.random.RandomState(2), 2, 48)
  with torch.no_grad():
    expected = model.get_image_features(
      pixel_values=torch.tensor(images), interpolate_pos_encoding=True
    )
  expected = getattr(expected, "pooler_output", expected)
  got = module.apply({"params": params}, images_nhwc, method="encode_image")
  error = ref.max_abs(got, expected)
  print(
    f"\ntiny CLIP at 48 px (interpolated positions): max abs error {error:.2e}"
  )
  assert error <= TOLERANCE


def test_unprojected_image_embedding_is_the_cls_after_ln_post(ref, tiny_clip):
  model, directory = tiny_clip
  module, params = models.load(directory)
  images, images_nhwc = ref.random_images(np.random.RandomState(3), 2, 32)
  with torch.no_grad():
    expected = model.vision_model(
      pixel_values=torch.tensor(images)
    ).pooler_output
  got = module.apply(
    {"params": params}, images_nhwc, project=False, method="encode_image"
  )
  assert got.shape == (2, 32)
  assert ref.max_abs(got, expected) <= TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("patch_size", [16, 32])
def test_full_size_clip_matches_transformers(ref, tmp_path, patch_size):
  directory = str(tmp_path / f"clip_b{patch_size}")
  model = ref.make_clip(
    directory,
    vision=dict(patch_size=patch_size),
    text=dict(),
    projection_dim=512,
  )
  module, params = models.load(directory)
  assert module.config.vision.width == 768 and module.config.vision.depth == 12
  tokenizer = models.tokenizer("clip")
  token_ids, _ = tokenizer(
    ["a photo of a cat", "a diagram", "a photo of a dog on grass"]
  )
  assert_clip_parity(
    ref, model, module, params, 224, token_ids, f"ViT-B/{patch_size} CLIP"
  )


def test_clip_tokenizer_matches_openai_ids():
  token_ids, mask = models.tokenizer("clip")(
    ["a photo of a cat", "word " * 100]
  )
  assert token_ids.shape == (2, 77) and token_ids.dtype == np.int32
  np.testing.assert_array_equal(
    token_ids[0, :8], [49406, 320, 1125, 539, 320, 2368, 49407, 0]
  )
  assert mask[0].sum() == 7 and token_ids[0, 7:].sum() == 0
  # Truncated like clip.tokenize(truncate=True): the last position is end-of-text.
  assert (
    token_ids[1, 0] == 49406
    and token_ids[1, 76] == 49407
    and mask[1].sum() == 77
  )
