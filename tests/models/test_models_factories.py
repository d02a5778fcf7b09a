"""Every checkpoint factory (tests/checkpoint_factories.py) loads with
`models.load` at its native size and at 224 px, and matches the torch model
its weights came from: HF CLIPModel (OpenAI's TorchScript archive, HF
directory), HF BertModel + BlipVisionModel (ALBEF), HF
BlipForImageTextRetrieval (BLIP .pth, HF directory)."""

import numpy as np
import pytest

from rationality_jax import models
from rationality_jax.models import families
from rationality_jax.models import readers
from tests import checkpoint_factories as factories

TOLERANCE = 1e-4  # max abs error, float32
CASES = {
  "openai_b16": ("openai_torchscript", {}),
  "openai_b32": ("openai_torchscript", {"patch": 32}),
  "albef_pretrain": ("albef_pth", {}),
  "albef_retrieval": ("albef_pth", {"retrieval": True, "image_size": 384}),
  "blip_model_base": ("blip_pth", {}),
  "hf_clip": ("hf_clip", {}),
  "hf_blip_retrieval": ("hf_blip_retrieval", {}),
}
TEXTS = ["a photo of a cat", "a dog running on the grass"]


@pytest.fixture(scope="module", params=sorted(CASES))
def made(request, tmp_path_factory):
  name, kwargs = CASES[request.param]
  return factories.make(name, tmp_path_factory.mktemp(request.param), **kwargs)


def embeddings(module, params, images_nhwc, ids, mask):
  """Projected image and text embeddings and the image CLS, in one apply."""

  def outputs(model, images, ids, mask):
    return (
      model.encode_image(images),
      model.encode_text(ids, mask),
      model.encode_image(images, project=False),
    )

  return module.apply(
    {"params": params}, images_nhwc, ids, mask, method=outputs
  )


def assert_matches_reference(made, module, params, size):
  family = models.family(module.config)
  ids, mask = family.tokenizer(module.config)(TEXTS)
  images, images_nhwc = factories.random_images(
    np.random.RandomState(0), 2, size
  )
  ours = embeddings(module, params, images_nhwc, ids, mask)
  theirs = made.reference(images, ids, mask)
  errors = {
    name: factories.max_abs(a, b)
    for name, a, b in zip(("image", "text", "cls"), ours, theirs)
  }
  print(f"\n{made.layout} {made.path} at {size} px: {errors}")
  assert max(errors.values()) <= TOLERANCE, errors


def test_loads_at_native_size_and_matches_reference(made):
  layout = families.detect_layout(
    readers.read_file(made.path)
    if made.path.endswith((".pt", ".pth"))
    else readers.read_hf_weights(made.path)
  )
  assert layout.name == made.layout
  module, params = models.load(made.path)
  assert module.config.family == made.family
  assert module.config.vision.image_size == made.image_size
  assert module.config.vision.patch_size == made.patch_size
  assert_matches_reference(made, module, params, made.image_size)
  if made.temperature is not None:
    multiplier = module.apply({"params": params}, method="logit_multiplier")
    np.testing.assert_allclose(multiplier, 1 / made.temperature, rtol=1e-6)


def test_loads_at_224_px(made):
  module, params = models.load(made.path, image_size=224)
  grid = 224 // made.patch_size
  assert params["vision"]["pos_embedding"].shape[0] == 1 + grid * grid
  assert module.config.vision.grid_size == grid
  assert_matches_reference(made, module, params, 224)


def test_openai_archive_keeps_float16_and_openai_entries(tmp_path):
  made = factories.openai_torchscript(tmp_path / "ViT-B-32.pt", patch=32)
  state = readers.read_file(made.path)
  assert state["visual.conv1.weight"].dtype == np.float16
  assert state["visual.conv1.weight"].shape == (128, 3, 32, 32)
  assert int(state["input_resolution"]) == 224
  assert int(state["context_length"]) == 77
  assert int(state["vocab_size"]) == factories.CLIP_VOCAB
  assert not any(k.endswith("attn_mask") for k in state)


def test_albef_and_blip_files_hold_what_the_originals_save(tmp_path):
  torch = pytest.importorskip("torch")
  albef = torch.load(
    factories.albef_pth(tmp_path / "ALBEF.pth").path, weights_only=True
  )
  assert set(albef) == {"model", "optimizer", "lr_scheduler", "config", "epoch"}
  keys = set(albef["model"])
  for key in (
    "text_encoder.bert.embeddings.token_type_embeddings.weight",
    "text_encoder.bert.embeddings.position_ids",
    "text_encoder.bert.encoder.layer.2.crossattention.self.key.weight",
    "text_encoder.cls.predictions.decoder.weight",
    "text_encoder_m.cls.predictions.bias",
    "visual_encoder_m.pos_embed",
    "image_queue",
    "queue_ptr",
    "itm_head.weight",
    "temp",
  ):
    assert key in keys, key
  assert albef["model"]["visual_encoder.pos_embed"].shape == (1, 257, 128)
  blip = torch.load(
    factories.blip_pth(tmp_path / "model_base.pth").path, weights_only=True
  )["model"]
  assert "text_encoder.embeddings.token_type_embeddings.weight" not in blip
  for key in (
    "text_encoder.encoder.layer.0.crossattention.self.key.weight",
    "text_decoder.bert.encoder.layer.1.crossattention.output.dense.bias",
    "text_decoder.cls.predictions.decoder.weight",
    "text_encoder_m.embeddings.word_embeddings.weight",
    "text_queue",
    "itm_head.bias",
  ):
    assert key in blip, key
  assert blip["text_encoder.embeddings.word_embeddings.weight"].shape == (
    factories.BLIP_VOCAB,
    64,
  )
  assert blip["visual_encoder.pos_embed"].shape == (1, 197, 128)
