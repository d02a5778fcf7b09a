"""Checkpoints made locally in the original formats, for tests of any directory.

    from tests import checkpoint_factories as factories
    made = factories.albef_pth(tmp_path / "ALBEF.pth")
    module, params = models.load(made.path)                # made.image_size px
    image, text = made.reference(images_nchw, ids, mask)    # the torch forward

Tiny widths (heads of 64 channels, as the originals: their loaders infer
heads = width // 64), but the key sets, nesting, dtypes, buffers and
containers of the original repositories' model definitions, at their native
resolutions, with the real vocabularies (CLIP 49,408; ALBEF 30,522; BLIP
30,524), so the family tokenizers' ids are valid:

* `openai_torchscript`: OpenAI's ``ViT-B-16.pt`` as ``clip.load`` reads it,
  a TorchScript archive of CLIP's module tree (``visual``, ``transformer``,
  ``nn.MultiheadAttention`` blocks with ``attn_mask`` attributes, ...) in
  float16, with the ``input_resolution``/``context_length``/``vocab_size``
  entries;
* `albef_pth`: ``ALBEF.pth`` as ALBEF's ``Pretrain.py`` saves it: ``{'model',
  'optimizer', 'lr_scheduler', 'config', 'epoch'}`` with ``BertForMaskedLM``
  text encoder (token types, persistent ``position_ids``, fusion layers with
  cross-attention from the image width, tied MLM head), momentum encoders,
  queues, ITM head;
* `blip_pth`: BLIP's ``model_base.pth`` (``BLIP_Pretrain``): text encoder with
  cross-attention in every layer, the captioning ``text_decoder``
  (``BertLMHeadModel``), momentum encoders, queues, ITM head;
* `hf_clip`, `hf_blip_retrieval`: ``save_pretrained`` of transformers models.

The weights come from transformers models with random weights (renamed to
the original keys where the format is not HF's); each factory returns a
`Made` whose ``reference`` runs that torch model, so tests compare against
an independent implementation. The lower-level builders and key remappers
(`make_clip`, `make_blip`, `hf_clip_to_openai`, `hf_blip_vision_to_timm`,
`write_openai_torchscript`, ...) serve the parity tests in tests/models.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
import dataclasses
import hashlib
import os
from typing import Any

import numpy as np
import torch
import transformers

CLIP_VOCAB = 49408
ALBEF_VOCAB = 30522
BLIP_VOCAB = 30524

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

# The factories' sizes: image tower 128 wide (2 heads), text 64 (1 head).
_VISION = dict(
  hidden_size=128,
  num_hidden_layers=2,
  num_attention_heads=2,
  intermediate_size=256,
)
_TEXT_WIDTH = dict(hidden_size=64, num_attention_heads=1, intermediate_size=128)
EMBED_DIM = 32


@dataclasses.dataclass(frozen=True)
class Made:
  """What a factory wrote.

  Attributes:
    path: the file or directory to give `models.load`.
    family: ``'clip'``, ``'albef'`` or ``'blip'``.
    layout: the layout `models.families.detect_layout` must find.
    image_size: the checkpoint's native image side in pixels.
    patch_size: its patch side.
    reference: ``(images [B, 3, S, S] float32, ids [B, T] int, mask [B, T])
      -> (image embeddings [B, E], text embeddings [B, E], image CLS [B, D])``
      float32 numpy from the torch model the weights came from: projected,
      not normalized embeddings, and the image tower's CLS output after its
      final LayerNorm (``encode_image(project=False)``). Images of another
      size than ``image_size`` are run with ``interpolate_pos_encoding``
      (bicubic, as `models.load(..., image_size=)` resizes).
    temperature: the logit temperature stored (None: the format stores
      ``logit_scale``, or none at all for HF BLIP retrieval).
  """

  path: str
  family: str
  layout: str
  image_size: int
  patch_size: int
  reference: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
  temperature: float | None = None


# ---------------------------------------------------------- utilities ----


def seeded(seed: int):
  torch.manual_seed(seed)
  return np.random.RandomState(seed)


def random_images(rng, batch, size):
  """[B, 3, S, S] float32 (torch layout) and its NHWC copy for Flax."""
  images = rng.randn(batch, 3, size, size).astype(np.float32)
  return images, images.transpose(0, 2, 3, 1)


def max_abs(a, b) -> float:
  a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
  b = b.detach().numpy() if isinstance(b, torch.Tensor) else np.asarray(b)
  assert a.shape == b.shape, (a.shape, b.shape)
  return float(np.abs(a - b).max())


def _perturb_norms(model: torch.nn.Module):
  """LayerNorms away from (1, 0), so that their mapping is tested."""
  with torch.no_grad():
    for name, param in model.named_parameters():
      if "LayerNorm" in name or "layer_norm" in name or "layernorm" in name:
        param.add_(0.1 * torch.randn_like(param))


def _numpy(tensor: torch.Tensor) -> np.ndarray:
  return tensor.detach().float().numpy()


# ------------------------------------------------------- HF builders ----


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
  _perturb_norms(model)
  if tmp_dir is not None:
    model.save_pretrained(tmp_dir)
  return model


def hf_retrieval_reference(model, images, ids, mask):
  """One HF BLIP retrieval forward (``use_itm_head=False``): the projected CLS
  embeddings and the ITC output (the cosine of their normalized versions)."""
  with torch.no_grad():
    out = model(
      input_ids=torch.as_tensor(np.asarray(ids, np.int64)),
      pixel_values=torch.as_tensor(images),
      attention_mask=torch.as_tensor(np.asarray(mask, np.int64)),
      use_itm_head=False,
      interpolate_pos_encoding=True,
    )
    image = model.vision_proj(out.last_hidden_state[:, 0])
    text = model.text_proj(out.question_embeds[:, 0])
  return image, text, out.itm_score


def _clip_reference(model):
  def reference(images, ids, mask):
    with torch.no_grad():
      out = model(
        pixel_values=torch.as_tensor(images),
        input_ids=torch.as_tensor(np.asarray(ids, np.int64)),
        attention_mask=torch.as_tensor(np.asarray(mask, np.int64)),
        interpolate_pos_encoding=True,
      )
      cls = model.vision_model(
        pixel_values=torch.as_tensor(images), interpolate_pos_encoding=True
      )
    return (
      _numpy(out.vision_model_output.pooler_output),
      _numpy(out.text_model_output.pooler_output),
      _numpy(cls.pooler_output),
    )

  return reference


def _blip_reference(model):
  def reference(images, ids, mask):
    image, text, _ = hf_retrieval_reference(model, images, ids, mask)
    with torch.no_grad():
      cls = model.vision_model(
        pixel_values=torch.as_tensor(images), interpolate_pos_encoding=True
      )[0][:, 0]
    return _numpy(image), _numpy(text), _numpy(cls)

  return reference


# ---------------------------------------------------- key remappers ----


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

  def depth(prefix):
    return 1 + max(
      int(k.split(".")[3]) for k in state if k.startswith(prefix + "encoder.")
    )

  tower("vision_model.", "visual.", depth("vision_model."))
  tower("text_model.", "", depth("text_model."))
  for ours, theirs in [
    ("visual.conv1.weight", "vision_model.embeddings.patch_embedding.weight"),
    ("visual.class_embedding", "vision_model.embeddings.class_embedding"),
    (
      "visual.positional_embedding",
      "vision_model.embeddings.position_embedding.weight",
    ),
    (
      "token_embedding.weight",
      "text_model.embeddings.token_embedding.weight",
    ),
    (
      "positional_embedding",
      "text_model.embeddings.position_embedding.weight",
    ),
    ("logit_scale", "logit_scale"),
  ]:
    out[ours] = state[theirs]
  for ours, theirs in [
    ("visual.ln_pre", "vision_model.pre_layrnorm"),
    ("visual.ln_post", "vision_model.post_layernorm"),
    ("ln_final", "text_model.final_layer_norm"),
  ]:
    out[ours + ".weight"] = state[theirs + ".weight"]
    out[ours + ".bias"] = state[theirs + ".bias"]
  out["visual.proj"] = state["visual_projection.weight"].T.contiguous()
  out["text_projection"] = state["text_projection.weight"].T.contiguous()
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


def momentum_and_queues(
  state: dict, embed_dim: int, queue_size: int = 8, ptr: str = "queue_ptr"
) -> dict:
  """The momentum copies (``*_m``) of an ALBEF/BLIP state, and its queues.

  Every ``visual_encoder.``, ``text_encoder.``, ``vision_proj.`` and
  ``text_proj.`` entry gets a ``_m`` twin (the models' ``copy_params``);
  ``image_queue``/``text_queue`` are [embed_dim, queue_size] unit columns
  and ``ptr`` the int64 [1] queue pointer (BLIP retrieval: ``ptr_queue``).
  """
  extra = {}
  for key, value in state.items():
    head, _, rest = key.partition(".")
    if head in ("visual_encoder", "text_encoder", "vision_proj", "text_proj"):
      extra[f"{head}_m.{rest}"] = value.clone()
  for name in ("image_queue", "text_queue"):
    extra[name] = torch.nn.functional.normalize(
      torch.randn(embed_dim, queue_size), dim=0
    )
  extra[ptr] = torch.zeros(1, dtype=torch.long)
  return extra


def _bert_layer(
  prefix: str, width: int, mlp: int, cross_width: int | None
) -> dict:
  """Random tensors of one BERT layer (ALBEF's xbert / BLIP's med names);
  with cross-attention from ``cross_width`` channels when given."""
  out = {}

  def linear(name, fan_in, fan_out):
    out[f"{prefix}{name}.weight"] = 0.02 * torch.randn(fan_out, fan_in)
    out[f"{prefix}{name}.bias"] = 0.02 * torch.randn(fan_out)

  def norm(name):
    out[f"{prefix}{name}.weight"] = 1 + 0.1 * torch.randn(width)
    out[f"{prefix}{name}.bias"] = 0.1 * torch.randn(width)

  for block, source in (("attention", width), ("crossattention", cross_width)):
    if source is None:
      continue
    linear(f"{block}.self.query", width, width)
    linear(f"{block}.self.key", source, width)
    linear(f"{block}.self.value", source, width)
    linear(f"{block}.output.dense", width, width)
    norm(f"{block}.output.LayerNorm")
  linear("intermediate.dense", width, mlp)
  linear("output.dense", mlp, width)
  norm("output.LayerNorm")
  return out


def _mlm_head(prefix: str, word_embeddings: torch.Tensor) -> dict:
  """``BertOnlyMLMHead`` entries; decoder.weight/bias are tied (shared storage)
  to the word embeddings and ``predictions.bias``, as in the models."""
  vocab, width = word_embeddings.shape
  bias = 0.02 * torch.randn(vocab)
  return {
    f"{prefix}predictions.bias": bias,
    f"{prefix}predictions.transform.dense.weight": 0.02
    * torch.randn(width, width),
    f"{prefix}predictions.transform.dense.bias": 0.02 * torch.randn(width),
    f"{prefix}predictions.transform.LayerNorm.weight": torch.ones(width),
    f"{prefix}predictions.transform.LayerNorm.bias": torch.zeros(width),
    f"{prefix}predictions.decoder.weight": word_embeddings,
    f"{prefix}predictions.decoder.bias": bias,
  }


# ----------------------------------------------- OpenAI's module tree ----


class _QuickGELU(torch.nn.Module):
  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return x * torch.sigmoid(1.702 * x)


class _ResidualAttentionBlock(torch.nn.Module):
  """clip/model.py's block: MultiheadAttention, ln_1, mlp (c_fc, c_proj), ln_2,
  and ``attn_mask`` as a plain attribute (not a buffer: not in the state dict)."""

  def __init__(self, width: int, heads: int, mlp: int, attn_mask=None):
    super().__init__()
    self.attn = torch.nn.MultiheadAttention(width, heads)
    self.ln_1 = torch.nn.LayerNorm(width)
    self.mlp = torch.nn.Sequential(
      collections.OrderedDict(
        [
          ("c_fc", torch.nn.Linear(width, mlp)),
          ("gelu", _QuickGELU()),
          ("c_proj", torch.nn.Linear(mlp, width)),
        ]
      )
    )
    self.ln_2 = torch.nn.LayerNorm(width)
    self.attn_mask = attn_mask

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    y = self.ln_1(x)
    x = x + self.attn(y, y, y, need_weights=False, attn_mask=self.attn_mask)[0]
    return x + self.mlp(self.ln_2(x))


class _Transformer(torch.nn.Module):
  def __init__(self, width, layers, heads, mlp, attn_mask=None):
    super().__init__()
    self.width = width
    self.layers = layers
    self.resblocks = torch.nn.Sequential(
      *[
        _ResidualAttentionBlock(width, heads, mlp, attn_mask)
        for _ in range(layers)
      ]
    )

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.resblocks(x)


class _VisionTransformer(torch.nn.Module):
  def __init__(self, resolution, patch, width, layers, mlp, output_dim):
    super().__init__()
    self.input_resolution = resolution
    self.output_dim = output_dim
    self.conv1 = torch.nn.Conv2d(3, width, patch, stride=patch, bias=False)
    grid = resolution // patch
    self.class_embedding = torch.nn.Parameter(torch.randn(width))
    self.positional_embedding = torch.nn.Parameter(
      torch.randn(grid * grid + 1, width)
    )
    self.ln_pre = torch.nn.LayerNorm(width)
    self.transformer = _Transformer(width, layers, width // 64, mlp)
    self.ln_post = torch.nn.LayerNorm(width)
    self.proj = torch.nn.Parameter(torch.randn(width, output_dim))

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = self.conv1(x).flatten(2).permute(0, 2, 1)
    cls = self.class_embedding.expand(x.shape[0], 1, -1)
    x = torch.cat([cls, x], dim=1) + self.positional_embedding
    x = self.transformer(self.ln_pre(x).permute(1, 0, 2)).permute(1, 0, 2)
    return self.ln_post(x[:, 0, :]) @ self.proj


class _OpenAICLIP(torch.nn.Module):
  """OpenAI's CLIP module tree (ViT image tower), sizes as ``build_model``
  reads them from a state dict (the MLP width too, which OpenAI fixes at 4x);
  ``forward(image, text)`` -> logits_per_image."""

  def __init__(self, state: dict):
    super().__init__()
    vision_width, _, patch, _ = state["visual.conv1.weight"].shape
    grid = round((state["visual.positional_embedding"].shape[0] - 1) ** 0.5)

    def depth(prefix):
      return 1 + max(
        int(k[len(prefix) :].split(".")[0])
        for k in state
        if k.startswith(prefix)
      )

    embed_dim = state["text_projection"].shape[1]
    context, width = state["positional_embedding"].shape
    vocab = state["token_embedding.weight"].shape[0]
    self.visual = _VisionTransformer(
      patch * grid,
      patch,
      vision_width,
      depth("visual.transformer.resblocks."),
      state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
      embed_dim,
    )
    mask = torch.full((context, context), float("-inf")).triu_(1)
    self.transformer = _Transformer(
      width,
      depth("transformer.resblocks."),
      width // 64,
      state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
      mask,
    )
    self.token_embedding = torch.nn.Embedding(vocab, width)
    self.positional_embedding = torch.nn.Parameter(torch.empty(context, width))
    self.ln_final = torch.nn.LayerNorm(width)
    self.text_projection = torch.nn.Parameter(torch.empty(width, embed_dim))
    self.logit_scale = torch.nn.Parameter(torch.ones([]))
    for name, value in (
      ("input_resolution", patch * grid),
      ("context_length", context),
      ("vocab_size", vocab),
    ):
      self.register_buffer(name, torch.tensor(value))

  def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    image_features = self.visual(image)
    x = self.token_embedding(text) + self.positional_embedding
    x = self.transformer(x.permute(1, 0, 2)).permute(1, 0, 2)
    x = self.ln_final(x)
    text_features = (
      x[torch.arange(x.shape[0]), text.argmax(dim=-1)] @ self.text_projection
    )
    image_features = torch.nn.functional.normalize(image_features, dim=1)
    text_features = torch.nn.functional.normalize(text_features, dim=1)
    return self.logit_scale.exp() * image_features @ text_features.t()


def write_openai_torchscript(state: dict, path, fp16: bool = True) -> None:
  """Script OpenAI's CLIP module tree holding ``state`` (OpenAI keys) into
  ``path``; float16 like the released archives when ``fp16``."""
  model = _OpenAICLIP(state)
  missing, unexpected = model.load_state_dict(state, strict=False)
  assert not unexpected, unexpected
  assert set(missing) <= {"input_resolution", "context_length", "vocab_size"}
  model.eval()
  if fp16:
    model.half()
  torch.jit.script(model).save(str(path))


# ------------------------------------------------------------ factories ----


def _tiny_hf_clip(patch: int, image_size: int, seed: int):
  seeded(seed)
  config = transformers.CLIPConfig(
    vision_config=dict(_VISION, image_size=image_size, patch_size=patch),
    text_config=dict(
      _TEXT_WIDTH,
      num_hidden_layers=2,
      vocab_size=CLIP_VOCAB,
      max_position_embeddings=77,
      bos_token_id=49406,
      eos_token_id=49407,
      pad_token_id=0,
    ),
    projection_dim=EMBED_DIM,
  )
  model = transformers.CLIPModel(config).eval()
  _perturb_norms(model)
  return model


def openai_torchscript(
  path, patch: int = 16, image_size: int = 224, fp16: bool = True, seed=0
) -> Made:
  """OpenAI's ``ViT-B-{patch}.pt``: a TorchScript archive ``clip.load`` reads.

  The weights of a tiny HF ``CLIPModel`` (rounded to float16 when ``fp16``,
  so the reference is exact), renamed to OpenAI's keys.
  """
  model = _tiny_hf_clip(patch, image_size, seed)
  if fp16:
    with torch.no_grad():
      for param in model.parameters():
        param.copy_(param.half().float())
  write_openai_torchscript(hf_clip_to_openai(model.state_dict()), path, fp16)
  return Made(
    os.fspath(path),
    "clip",
    "openai_clip",
    image_size,
    patch,
    _clip_reference(model),
  )


def hf_clip(directory, patch: int = 16, image_size: int = 224, seed=0) -> Made:
  """``save_pretrained`` of a tiny HF ``CLIPModel`` (real vocabulary, 77
  positions) into ``directory``."""
  model = _tiny_hf_clip(patch, image_size, seed)
  model.save_pretrained(directory)
  return Made(
    os.fspath(directory),
    "clip",
    "hf_clip",
    image_size,
    patch,
    _clip_reference(model),
  )


def _tiny_hf_blip(image_size: int, seed: int, directory=None):
  return make_blip(
    directory,
    vision=dict(_VISION, image_size=image_size, patch_size=16),
    text=dict(
      _TEXT_WIDTH,
      num_hidden_layers=2,
      vocab_size=BLIP_VOCAB,
      max_position_embeddings=512,
    ),
    embed_dim=EMBED_DIM,
    seed=seed,
  )


def hf_blip_retrieval(directory, image_size: int = 384, seed=0) -> Made:
  """``save_pretrained`` of a tiny HF ``BlipForImageTextRetrieval`` (BLIP's
  vocabulary, 384 px as the ``Salesforce/blip-itm-*`` models)."""
  model = _tiny_hf_blip(image_size, seed, directory)
  return Made(
    os.fspath(directory),
    "blip",
    "hf_blip_retrieval",
    image_size,
    16,
    _blip_reference(model),
  )


def _training_extras(config: dict, epoch: int) -> dict:
  """The non-model entries ALBEF's and BLIP's training scripts save."""
  return {
    "optimizer": {
      "state": {},
      "param_groups": [{"lr": 1e-4, "weight_decay": 0.02, "params": [0]}],
    },
    "lr_scheduler": {"last_epoch": epoch},
    "config": config,
    "epoch": epoch,
  }


def blip_pth(path, image_size: int = 224, temp: float = 0.05, seed=0) -> Made:
  """BLIP's ``model_base.pth`` (``BLIP_Pretrain.state_dict()`` under
  ``'model'``; pretrained at 224 px: the retrieval models interpolate it to
  384 when they load it).

  Text encoder and decoder have cross-attention in every layer from the
  image width; the decoder is ``text_decoder.bert.*`` + its tied MLM head.
  """
  model = _tiny_hf_blip(image_size, seed)
  hf = model.state_dict()
  state = hf_blip_vision_to_timm(hf)
  text = {k: v for k, v in hf.items() if k.startswith("text_encoder.")}
  text["text_encoder.embeddings.position_ids"] = torch.arange(512)[None]
  state.update(text)
  for name in ("vision_proj", "text_proj", "itm_head"):
    state[name + ".weight"], state[name + ".bias"] = (
      hf[name + ".weight"],
      hf[name + ".bias"],
    )
  state["temp"] = torch.tensor(temp)
  state.update(momentum_and_queues(state, EMBED_DIM))
  decoder = {
    "text_decoder.bert." + k[len("text_encoder.") :]: v.clone()
    for k, v in text.items()
  }
  decoder.update(
    _mlm_head(
      "text_decoder.cls.",
      decoder["text_decoder.bert.embeddings.word_embeddings.weight"],
    )
  )
  state.update(decoder)
  torch.save(
    {
      "model": state,
      **_training_extras({"image_size": image_size, "vit": "base"}, 19),
    },
    str(path),
  )
  return Made(
    os.fspath(path),
    "blip",
    "blip",
    image_size,
    16,
    _blip_reference(model),
    temperature=temp,
  )


def albef_pth(
  path,
  image_size: int = 256,
  retrieval: bool = False,
  text_layers: int = 2,
  fusion_layers: int = 2,
  temp: float = 0.05,
  seed=0,
) -> Made:
  """ALBEF's ``ALBEF.pth``: the pretraining ``ALBEF.state_dict()`` under
  ``'model'`` (256 px), or with ``retrieval`` a retrieval checkpoint
  (``models/model_retrieval.py``: ``BertModel`` text encoder, ``idx_queue``).

  Pretraining: ``text_encoder`` is xbert's ``BertForMaskedLM``: ``bert.*``
  with token types and a persistent ``position_ids``, ``text_layers`` text
  layers then ``fusion_layers`` layers with cross-attention from the image
  width (ALBEF: 6 + 6), and the MLM head ``cls.*`` tied to the word
  embeddings. Retrieval: the same ``bert.*`` entries directly under
  ``text_encoder.``, no MLM head.
  """
  seeded(seed)
  bert = transformers.BertModel(
    transformers.BertConfig(
      **_TEXT_WIDTH,
      num_hidden_layers=text_layers,
      vocab_size=ALBEF_VOCAB,
      max_position_embeddings=512,
      type_vocab_size=2,
      pad_token_id=0,
    ),
    add_pooling_layer=False,
  ).eval()
  vision = transformers.BlipVisionModel(
    transformers.BlipVisionConfig(
      **_VISION, image_size=image_size, patch_size=16, layer_norm_eps=1e-6
    )
  ).eval()
  _perturb_norms(bert)
  _perturb_norms(vision)
  vision_proj = torch.nn.Linear(_VISION["hidden_size"], EMBED_DIM)
  text_proj = torch.nn.Linear(_TEXT_WIDTH["hidden_size"], EMBED_DIM)
  state = hf_blip_vision_to_timm(vision.state_dict(), prefix="")
  prefix = "text_encoder." if retrieval else "text_encoder.bert."
  state.update({prefix + k: v for k, v in bert.state_dict().items()})
  state[prefix + "embeddings.position_ids"] = torch.arange(512)[None]
  for i in range(text_layers, text_layers + fusion_layers):
    state.update(
      _bert_layer(
        f"{prefix}encoder.layer.{i}.",
        _TEXT_WIDTH["hidden_size"],
        _TEXT_WIDTH["intermediate_size"],
        cross_width=_VISION["hidden_size"],
      )
    )
  if not retrieval:
    state.update(
      _mlm_head(
        "text_encoder.cls.",
        state[prefix + "embeddings.word_embeddings.weight"],
      )
    )
  for name, layer in (("vision_proj", vision_proj), ("text_proj", text_proj)):
    state[name + ".weight"], state[name + ".bias"] = layer.weight, layer.bias
  state["temp"] = torch.tensor(temp)
  state["itm_head.weight"] = 0.02 * torch.randn(2, _TEXT_WIDTH["hidden_size"])
  state["itm_head.bias"] = torch.zeros(2)
  state.update(momentum_and_queues(state, EMBED_DIM))
  if retrieval:
    state["idx_queue"] = torch.full((1, 8), -100)
  state = {k: v.detach() for k, v in state.items()}
  torch.save(
    {
      "model": state,
      **_training_extras({"image_res": image_size, "embed_dim": EMBED_DIM}, 29),
    },
    str(path),
  )

  def reference(images, ids, mask):
    with torch.no_grad():
      cls = vision(
        pixel_values=torch.as_tensor(images), interpolate_pos_encoding=True
      )[0][:, 0]
      image = vision_proj(cls)
      text = text_proj(
        bert(
          input_ids=torch.as_tensor(np.asarray(ids, np.int64)),
          attention_mask=torch.as_tensor(np.asarray(mask, np.int64)),
        )[0][:, 0]
      )
    return _numpy(image), _numpy(text), _numpy(cls)

  return Made(
    os.fspath(path), "albef", "albef", image_size, 16, reference, temp
  )


def hub_cache(cache_dir, hub_id: str, directory, revision: str = "") -> str:
  """Put the files of ``directory`` into a huggingface_hub cache at
  ``cache_dir`` as the snapshot of ``hub_id``, laid out as huggingface_hub
  does: ``models--<org>--<name>/blobs/<sha256>``, ``snapshots/<revision>/<file>``
  symlinks to the blobs, ``refs/main`` holding the revision. Returns the
  snapshot directory. Point ``HF_HUB_CACHE`` at ``cache_dir`` to use it.
  """
  revision = revision or hashlib.sha1(hub_id.encode()).hexdigest()
  repo = os.path.join(
    os.fspath(cache_dir), "models--" + hub_id.replace("/", "--")
  )
  snapshot = os.path.join(repo, "snapshots", revision)
  os.makedirs(os.path.join(repo, "blobs"), exist_ok=True)
  os.makedirs(os.path.join(repo, "refs"), exist_ok=True)
  os.makedirs(snapshot, exist_ok=True)
  for name in sorted(os.listdir(directory)):
    with open(os.path.join(directory, name), "rb") as f:
      content = f.read()
    blob = hashlib.sha256(content).hexdigest()
    with open(os.path.join(repo, "blobs", blob), "wb") as f:
      f.write(content)
    os.symlink(
      os.path.join("..", "..", "blobs", blob), os.path.join(snapshot, name)
    )
  with open(os.path.join(repo, "refs", "main"), "w") as f:
    f.write(revision)
  return snapshot


Factory = Callable[..., Made]
FACTORIES: dict[str, tuple[Factory, str]] = {
  "openai_torchscript": (openai_torchscript, "ViT-B-{patch}.pt"),
  "albef_pth": (albef_pth, "ALBEF.pth"),
  "blip_pth": (blip_pth, "model_base.pth"),
  "hf_clip": (hf_clip, "clip-vit-base-patch16"),
  "hf_blip_retrieval": (hf_blip_retrieval, "blip-itm-base-coco"),
}


def make(name: str, directory, **kwargs: Any) -> Made:
  """``FACTORIES[name]`` writing under ``directory`` with the original's name."""
  factory, filename = FACTORIES[name]
  filename = filename.format(**{"patch": 16, **kwargs})
  return factory(os.path.join(os.fspath(directory), filename), **kwargs)
