"""Reference models for the model tests: transformers PyTorch models with random
weights saved offline, and the same weights written in the original layouts
(OpenAI CLIP, ALBEF, original BLIP)."""

import os
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY_VISION = dict(
  hidden_size=32,
  num_hidden_layers=2,
  num_attention_heads=4,
  intermediate_size=37,
  image_size=32,
  patch_size=8,
)
TINY_CLIP_TEXT = dict(
  vocab_size=99,
  hidden_size=32,
  num_hidden_layers=2,
  num_attention_heads=4,
  intermediate_size=37,
  max_position_embeddings=16,
  bos_token_id=97,
  eos_token_id=98,
  pad_token_id=1,
)
# OpenAI, ALBEF and BLIP checkpoints carry no config: heads = width // 64.
HEAD_DIM_64_VISION = dict(TINY_VISION, hidden_size=128, num_attention_heads=2)
HEAD_DIM_64_CLIP_TEXT = dict(
  TINY_CLIP_TEXT, hidden_size=64, num_attention_heads=1
)
TINY_BERT = dict(
  vocab_size=99,
  hidden_size=32,
  num_hidden_layers=2,
  num_attention_heads=4,
  intermediate_size=37,
  max_position_embeddings=40,
  bos_token_id=97,
  sep_token_id=98,
  pad_token_id=0,
)
HEAD_DIM_64_BERT = dict(TINY_BERT, hidden_size=128, num_attention_heads=2)


class StateNode(torch.nn.Module):
  """A scriptable module that only holds buffers (to write TorchScript archives)."""

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x


def save_torchscript(state: dict, path: str) -> None:
  """Write ``state`` as a TorchScript archive whose state_dict has these keys."""
  root = StateNode()
  for key, value in state.items():
    *parents, leaf = key.split(".")
    node = root
    for name in parents:
      if not hasattr(node, name):
        node.add_module(name, StateNode())
      node = getattr(node, name)
    node.register_buffer(leaf, value.clone())
  torch.jit.script(root).save(path)


def seeded(seed: int):
  torch.manual_seed(seed)
  return np.random.RandomState(seed)


def make_clip(tmp_dir, vision=None, text=None, projection_dim=16, seed=0):
  """A random HF CLIPModel saved with save_pretrained into tmp_dir."""
  seeded(seed)
  config = transformers.CLIPConfig(
    text_config=TINY_CLIP_TEXT if text is None else text,
    vision_config=TINY_VISION if vision is None else vision,
    projection_dim=projection_dim,
  )
  model = transformers.CLIPModel(config).eval()
  model.save_pretrained(tmp_dir)
  return model


def make_blip(tmp_dir, vision=None, text=None, embed_dim=16, seed=0, cls=None):
  """A random HF BlipForImageTextRetrieval (or ``cls``) saved into tmp_dir.

  Tiny by default, with 64-dim heads (so BLIP's .pth layout can hold it).
  The vision LayerNorm eps is timm's 1e-6 (as original BLIP) unless given.
  """
  seeded(seed)
  vision = {
    "layer_norm_eps": 1e-6,
    **(HEAD_DIM_64_VISION if vision is None else vision),
  }
  config = transformers.BlipConfig(
    text_config=HEAD_DIM_64_BERT if text is None else text,
    vision_config=vision,
    image_text_hidden_size=embed_dim,
    projection_dim=embed_dim,
  )
  model = (cls or transformers.BlipForImageTextRetrieval)(config).eval()
  with (
    torch.no_grad()
  ):  # make LayerNorms non-trivial so their mapping is tested
    for name, param in model.named_parameters():
      if "LayerNorm" in name or "layer_norm" in name or "layernorm" in name:
        param.add_(0.1 * torch.randn_like(param))
  model.save_pretrained(tmp_dir)
  return model


def hf_clip_to_openai(state: dict) -> dict:
  """HF CLIPModel state dict -> OpenAI CLIP key layout (same tensors)."""
  out = {}

  def tower(src, dst, depth):
    for i in range(depth):
      s, d = f"{src}encoder.layers.{i}.", f"{dst}transformer.resblocks.{i}."
      out[d + "attn.in_proj_weight"] = torch.cat(
        [state[f"{s}self_attn.{n}_proj.weight"] for n in "qkv"]
      )
      out[d + "attn.in_proj_bias"] = torch.cat(
        [state[f"{s}self_attn.{n}_proj.bias"] for n in "qkv"]
      )
      for ours, theirs in [
        ("attn.out_proj", "self_attn.out_proj"),
        ("ln_1", "layer_norm1"),
        ("ln_2", "layer_norm2"),
        ("mlp.c_fc", "mlp.fc1"),
        ("mlp.c_proj", "mlp.fc2"),
      ]:
        out[f"{d}{ours}.weight"] = state[f"{s}{theirs}.weight"]
        out[f"{d}{ours}.bias"] = state[f"{s}{theirs}.bias"]

  depth_v = 1 + max(
    int(k.split(".")[3]) for k in state if k.startswith("vision_model.encoder.")
  )
  depth_t = 1 + max(
    int(k.split(".")[3]) for k in state if k.startswith("text_model.encoder.")
  )
  tower("vision_model.", "visual.", depth_v)
  tower("text_model.", "", depth_t)
  out["visual.conv1.weight"] = state[
    "vision_model.embeddings.patch_embedding.weight"
  ]
  out["visual.class_embedding"] = state[
    "vision_model.embeddings.class_embedding"
  ]
  out["visual.positional_embedding"] = state[
    "vision_model.embeddings.position_embedding.weight"
  ]
  for ours, theirs in [
    ("visual.ln_pre", "vision_model.pre_layrnorm"),
    ("visual.ln_post", "vision_model.post_layernorm"),
    ("ln_final", "text_model.final_layer_norm"),
  ]:
    out[ours + ".weight"] = state[theirs + ".weight"]
    out[ours + ".bias"] = state[theirs + ".bias"]
  out["visual.proj"] = state["visual_projection.weight"].T.contiguous()
  out["text_projection"] = state["text_projection.weight"].T.contiguous()
  out["token_embedding.weight"] = state[
    "text_model.embeddings.token_embedding.weight"
  ]
  out["positional_embedding"] = state[
    "text_model.embeddings.position_embedding.weight"
  ]
  out["logit_scale"] = state["logit_scale"]
  out["input_resolution"] = torch.tensor(224)
  out["context_length"] = torch.tensor(77)
  out["vocab_size"] = torch.tensor(49408)
  return out


def hf_blip_vision_to_timm(state: dict, prefix="vision_model.") -> dict:
  """HF BlipVisionModel keys -> timm/ALBEF/BLIP ``visual_encoder.*`` keys."""
  out = {}
  names = [
    ("norm1", "layer_norm1"),
    ("attn.qkv", "self_attn.qkv"),
    ("attn.proj", "self_attn.projection"),
    ("norm2", "layer_norm2"),
    ("mlp.fc1", "mlp.fc1"),
    ("mlp.fc2", "mlp.fc2"),
  ]
  for key, value in state.items():
    if not key.startswith(prefix + "encoder.layers."):
      continue
    i, rest = key[len(prefix + "encoder.layers.") :].split(".", 1)
    for ours, theirs in names:
      if rest.startswith(theirs + "."):
        out[f"visual_encoder.blocks.{i}.{ours}{rest[len(theirs) :]}"] = value
  out["visual_encoder.cls_token"] = state[prefix + "embeddings.class_embedding"]
  out["visual_encoder.pos_embed"] = state[
    prefix + "embeddings.position_embedding"
  ]
  out["visual_encoder.patch_embed.proj.weight"] = state[
    prefix + "embeddings.patch_embedding.weight"
  ]
  out["visual_encoder.patch_embed.proj.bias"] = state[
    prefix + "embeddings.patch_embedding.bias"
  ]
  out["visual_encoder.norm.weight"] = state[prefix + "post_layernorm.weight"]
  out["visual_encoder.norm.bias"] = state[prefix + "post_layernorm.bias"]
  return out


def momentum_and_queues(state: dict, embed_dim: int) -> dict:
  """What ALBEF/BLIP checkpoints carry besides the ITC weights (to be ignored)."""
  extra = {
    k.replace("visual_encoder.", "visual_encoder_m.", 1): v.clone()
    for k, v in state.items()
    if k.startswith("visual_encoder.")
  }
  extra.update(
    {
      "vision_proj_m.weight": state["vision_proj.weight"].clone(),
      "text_proj_m.bias": state["text_proj.bias"].clone(),
      "image_queue": torch.randn(embed_dim, 8),
      "text_queue": torch.randn(embed_dim, 8),
      "queue_ptr": torch.zeros(1, dtype=torch.long),
      "itm_head.weight": torch.randn(2, 32),
      "itm_head.bias": torch.randn(2),
    }
  )
  return extra


def random_images(rng, batch, size):
  """[B, 3, S, S] float32 (torch layout) and its NHWC copy for Flax."""
  images = rng.randn(batch, 3, size, size).astype(np.float32)
  return images, images.transpose(0, 2, 3, 1)


def max_abs(a, b) -> float:
  a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
  b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
  assert a.shape == b.shape, (a.shape, b.shape)
  return float(np.abs(a - b).max())


@pytest.fixture(scope="session")
def tiny_clip(tmp_path_factory):
  """(HF CLIPModel, its save_pretrained directory)."""
  directory = str(tmp_path_factory.mktemp("tiny_clip"))
  return make_clip(directory), directory


@pytest.fixture(scope="session")
def head_dim_64_clip(tmp_path_factory):
  """(HF CLIPModel with 64-dim heads, its directory): convertible to OpenAI's layout."""
  directory = str(tmp_path_factory.mktemp("clip_hd64"))
  return make_clip(
    directory, vision=HEAD_DIM_64_VISION, text=HEAD_DIM_64_CLIP_TEXT
  ), directory


@pytest.fixture(scope="session")
def tiny_blip(tmp_path_factory):
  """(HF BlipForImageTextRetrieval, its save_pretrained directory)."""
  directory = str(tmp_path_factory.mktemp("tiny_blip"))
  return make_blip(directory), directory


def pytest_report_header():
  return (
    f"models tests: torch {torch.__version__}, transformers {transformers.__version__}, "
    f"HF_HUB_OFFLINE={os.environ.get('HF_HUB_OFFLINE')}"
  )


@pytest.fixture(scope="session")
def ref():
  """This module: the reference builders and key remappers above."""
  return sys.modules[__name__]
