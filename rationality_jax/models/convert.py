"""Strict checkpoint conversion: source state dicts -> `VisionLanguageModel` params.

Source layouts (detected from the keys; the names kept are the sources' own):

* ``hf_clip``: HF ``CLIPModel`` (``vision_model.*``, ``text_model.*``,
  ``visual_projection``, ``text_projection``, ``logit_scale``).
* ``hf_blip_retrieval``: HF ``BlipForImageTextRetrieval`` (``vision_model.*``,
  ``text_encoder.*``, ``vision_proj``, ``text_proj``). It stores no
  temperature: ``temp`` is filled with BLIP's initial value 0.07 unless the
  ``temp=`` override gives one.
* ``hf_blip``: HF ``BlipModel`` (``text_model.*`` with a pooler,
  ``visual_projection``/``text_projection`` without bias, ``logit_scale``).
* ``openai_clip``: OpenAI CLIP (``visual.*``, ``transformer.resblocks.*``,
  ``token_embedding``, ``ln_final``, ``text_projection``, ``logit_scale``).
* ``albef``: ALBEF (``visual_encoder.*`` in timm's names, ``text_encoder.*``
  or ``text_encoder.bert.*`` in BERT's names with ``token_type_embeddings``,
  ``vision_proj``, ``text_proj``, ``temp``). Text mode runs the layers before
  the first one with cross-attention (``fusion_layer``, 6).
* ``blip``: original BLIP (like ALBEF, but no token types and all 12 text
  layers; ``model_base.pth`` and the retrieval checkpoints).

Strictness: every source key is either converted or matches one of the
layout's ``IGNORED`` patterns (momentum copies, queues, heads and layers the
ITC path does not use); every model leaf is filled; shapes must agree.
Violations raise `CheckpointError` naming the key(s) and both shapes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import dataclasses
import functools
import re

import flax
import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax.models.text import BertConfig
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vit import resize_position_embedding
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import VLMConfig

BLIP_TEMP_INIT = 0.07
TEMP_RANGE = (0.001, 0.5)


class CheckpointError(ValueError):
  """A checkpoint that cannot be converted exactly (says which key and why)."""


# Source keys that the ITC path does not use, per layout. Every other key must
# be converted.
_MOMENTUM_AND_QUEUES = (
  r"^[a-z_]+_m\.",  # ALBEF/BLIP momentum encoders: visual_encoder_m, ...
  r"^(image_queue|text_queue|idx_queue|queue_ptr|ptr_queue)$",
)
IGNORED: dict[str, tuple[str, ...]] = {
  "hf_clip": (r"\.position_ids$",),
  "hf_blip_retrieval": (
    r"\.position_ids$",
    r"^itm_head\.",  # image-text matching head (ITM path)
    r"^text_encoder\.encoder\.layer\.\d+\.crossattention\.",  # fusion (ITM)
  ),
  "hf_blip": (
    r"\.position_ids$",
    r"^text_model\.encoder\.layer\.\d+\.crossattention\.",
  ),
  "openai_clip": (r"^(input_resolution|context_length|vocab_size)$",),
  # ALBEF: layers >= fusion_layer are the fusion encoder; added per checkpoint.
  "albef": (
    *_MOMENTUM_AND_QUEUES,
    r"\.position_ids$",
    r"^itm_head\.",
    r"^text_encoder\.cls\.",  # BertForMaskedLM's MLM head
  ),
  "blip": (
    *_MOMENTUM_AND_QUEUES,
    r"\.position_ids$",
    r"^itm_head\.",
    r"^text_decoder\.",  # captioning decoder of model_base.pth
    r"^text_encoder\.encoder\.layer\.\d+\.crossattention\.",
  ),
}


def detect_layout(keys: Iterable[str]) -> str:
  """Which source layout a state dict's keys are in (see the module docstring)."""
  keys = set(keys)
  if "visual.conv1.weight" in keys:
    return "openai_clip"
  if "visual_encoder.cls_token" in keys:
    if any(
      k.endswith("embeddings.token_type_embeddings.weight")
      and k.startswith("text_encoder.")
      for k in keys
    ):
      return "albef"
    return "blip"
  if "vision_model.embeddings.class_embedding" in keys:
    if "text_encoder.embeddings.word_embeddings.weight" in keys:
      return "hf_blip_retrieval"
    if "text_model.pooler.dense.weight" in keys:
      return "hf_blip"
    if "text_model.embeddings.token_embedding.weight" in keys:
      return "hf_clip"
  sample = sorted(keys)[:8]
  raise CheckpointError(
    "unknown checkpoint layout: expected OpenAI CLIP (visual.conv1.weight), "
    "ALBEF/BLIP (visual_encoder.cls_token) or HF CLIPModel/BlipModel/"
    f"BlipForImageTextRetrieval (vision_model.*) keys; got e.g. {sample}."
  )


# ----------------------------------------------------------------------------
# Configs inferred from shapes (OpenAI, ALBEF, BLIP .pt/.pth carry no config).
# ----------------------------------------------------------------------------


def _count_layers(keys: Iterable[str], pattern: str) -> int:
  indices = {int(m.group(1)) for k in keys if (m := re.match(pattern, k))}
  return max(indices) + 1 if indices else 0


def _grid(num_positions: int) -> int:
  return round((num_positions - 1) ** 0.5)


def openai_clip_config(state: Mapping[str, np.ndarray]) -> VLMConfig:
  """VLMConfig of an OpenAI CLIP ViT state dict (as OpenAI's build_model does:
  sizes from the shapes, heads = width // 64)."""
  vision_width, _, patch, _ = state["visual.conv1.weight"].shape
  vision = ViTConfig(
    image_size=patch * _grid(state["visual.positional_embedding"].shape[0]),
    patch_size=patch,
    width=vision_width,
    depth=_count_layers(state, r"visual\.transformer\.resblocks\.(\d+)\."),
    num_heads=vision_width // 64,
    mlp_dim=state["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
    activation="quick_gelu",
    layer_norm_eps=1e-5,
    patch_bias=False,
    pre_norm=True,
  )
  width = state["ln_final.weight"].shape[0]
  text = CLIPTextConfig(
    vocab_size=state["token_embedding.weight"].shape[0],
    context_length=state["positional_embedding"].shape[0],
    width=width,
    depth=_count_layers(state, r"transformer\.resblocks\.(\d+)\."),
    num_heads=width // 64,
    mlp_dim=state["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
  )
  return VLMConfig(
    family="clip",
    vision=vision,
    text=text,
    embed_dim=state["text_projection"].shape[1],
    projection_bias=False,
  )


def _text_prefix(state: Mapping[str, np.ndarray]) -> str:
  return (
    "text_encoder.bert."
    if any(k.startswith("text_encoder.bert.") for k in state)
    else "text_encoder."
  )


def albef_or_blip_config(
  state: Mapping[str, np.ndarray], layout: str
) -> VLMConfig:
  """VLMConfig of an ALBEF or original BLIP state dict (timm ViT + BERT).

  Sizes come from the shapes, heads = width // 64 (ViT-B and BERT-base), the
  image size from the position embedding (384 for the released checkpoints).
  """
  cls = state["visual_encoder.cls_token"]
  patch = state["visual_encoder.patch_embed.proj.weight"].shape[-1]
  width = cls.shape[-1]
  vision = ViTConfig(
    image_size=patch * _grid(state["visual_encoder.pos_embed"].shape[-2]),
    patch_size=patch,
    width=width,
    depth=_count_layers(state, r"visual_encoder\.blocks\.(\d+)\."),
    num_heads=width // 64,
    mlp_dim=state["visual_encoder.blocks.0.mlp.fc1.weight"].shape[0],
    activation="gelu",
    layer_norm_eps=1e-6,
    patch_bias=True,
    pre_norm=False,
  )
  prefix = _text_prefix(state)
  vocab, text_width = state[prefix + "embeddings.word_embeddings.weight"].shape
  layer = re.escape(prefix) + r"encoder\.layer\.(\d+)\."
  depth = _count_layers(state, layer)
  if layout == "albef":
    depth = min(
      (
        int(m.group(1))
        for k in state
        if (m := re.match(layer + "crossattention", k))
      ),
      default=depth,
    )
  token_types = state.get(prefix + "embeddings.token_type_embeddings.weight")
  text = BertConfig(
    vocab_size=vocab,
    width=text_width,
    depth=depth,
    num_heads=text_width // 64,
    mlp_dim=state[prefix + "encoder.layer.0.intermediate.dense.weight"].shape[
      0
    ],
    max_positions=state[prefix + "embeddings.position_embeddings.weight"].shape[
      0
    ],
    type_vocab_size=0 if token_types is None else token_types.shape[0],
  )
  return VLMConfig(
    family=layout,
    vision=vision,
    text=text,
    embed_dim=state["vision_proj.weight"].shape[0],
    projection_bias=True,
    logit="temp",
    temp_range=TEMP_RANGE,
  )


def hf_config(hf_config_obj, layout: str) -> VLMConfig:
  """VLMConfig from a transformers CLIPConfig / BlipConfig object."""
  v, t = hf_config_obj.vision_config, hf_config_obj.text_config
  clip = layout == "hf_clip"
  vision = ViTConfig(
    image_size=v.image_size,
    patch_size=v.patch_size,
    width=v.hidden_size,
    depth=v.num_hidden_layers,
    num_heads=v.num_attention_heads,
    mlp_dim=v.intermediate_size,
    activation=_hf_activation(v.hidden_act),
    layer_norm_eps=v.layer_norm_eps,
    patch_bias=not clip,
    pre_norm=clip,
  )
  if clip:
    text = CLIPTextConfig(
      vocab_size=t.vocab_size,
      context_length=t.max_position_embeddings,
      width=t.hidden_size,
      depth=t.num_hidden_layers,
      num_heads=t.num_attention_heads,
      mlp_dim=t.intermediate_size,
      activation=_hf_activation(t.hidden_act),
      layer_norm_eps=t.layer_norm_eps,
      eot_token_id=None if t.eos_token_id == 2 else t.eos_token_id,
    )
    return VLMConfig(
      family="clip",
      vision=vision,
      text=text,
      embed_dim=hf_config_obj.projection_dim,
      projection_bias=False,
    )
  text = BertConfig(
    vocab_size=t.vocab_size,
    width=t.hidden_size,
    depth=t.num_hidden_layers,
    num_heads=t.num_attention_heads,
    mlp_dim=t.intermediate_size,
    max_positions=t.max_position_embeddings,
    type_vocab_size=0,
    layer_norm_eps=t.layer_norm_eps,
  )
  if t.hidden_act != "gelu":
    raise CheckpointError(
      f"BLIP text hidden_act {t.hidden_act!r} is not supported "
      "(BERT uses exact 'gelu')."
    )
  if layout == "hf_blip":
    return VLMConfig(
      family="blip",
      vision=vision,
      text=text,
      embed_dim=hf_config_obj.projection_dim,
      projection_bias=False,
      text_pooler=True,
      vision_cls_norm_twice=True,
    )
  return VLMConfig(
    family="blip",
    vision=vision,
    text=text,
    embed_dim=hf_config_obj.image_text_hidden_size,
    projection_bias=True,
    logit="temp",
    temp_range=TEMP_RANGE,
  )


def _hf_activation(name: str) -> str:
  if name not in ("quick_gelu", "gelu"):
    raise CheckpointError(
      f"activation {name!r} is not supported; expected "
      "'quick_gelu' (CLIP) or 'gelu' (exact erf GELU)."
    )
  return name


# ----------------------------------------------------------------------------
# The strict converter.
# ----------------------------------------------------------------------------


class _Converter:
  """Fills a params tree from source keys, tracking what was used."""

  def __init__(self, state: Mapping[str, np.ndarray], expected: Mapping):
    self.state = state
    self.expected = flax.traverse_util.flatten_dict(expected, sep="/")
    self.params: dict[str, np.ndarray] = {}
    self.used: set[str] = set()

  def take(self, key: str) -> np.ndarray:
    if key not in self.state:
      raise CheckpointError(f"missing key {key!r} in the checkpoint.")
    self.used.add(key)
    return np.asarray(self.state[key], np.float32)

  def put(self, target: str, value: np.ndarray, sources: str | Iterable[str]):
    if target not in self.expected:
      raise CheckpointError(f"internal: model has no param {target!r}.")
    want = tuple(self.expected[target].shape)
    if value.shape != want:
      sources = [sources] if isinstance(sources, str) else list(sources)
      got = ", ".join(f"{s!r} {tuple(self.state[s].shape)}" for s in sources)
      raise CheckpointError(
        f"shape mismatch for {got}: converted to {tuple(value.shape)}, but the "
        f"model's {target!r} expects {want}."
      )
    self.params[target] = value

  def copy(self, target: str, key: str, transpose: bool = False):
    value = self.take(key)
    self.put(target, value.T if transpose else value, key)

  def linear(self, target: str, weight: str, bias: str | None):
    """torch Linear weight [out, in] (+ bias) -> Dense kernel [in, out] (+ bias)."""
    self.copy(f"{target}/kernel", weight, transpose=True)
    if bias is not None:
      self.copy(f"{target}/bias", bias)

  def norm(self, target: str, source: str):
    self.copy(f"{target}/scale", source + ".weight")
    self.copy(f"{target}/bias", source + ".bias")

  def fused(self, target: str, weights: list[str], biases: list[str]):
    """One Dense from row-stacked torch weights (q, k, v -> qkv)."""
    kernel = np.concatenate([self.take(w) for w in weights], axis=0).T
    self.put(f"{target}/kernel", kernel, weights)
    bias = np.concatenate([self.take(b) for b in biases], axis=0)
    self.put(f"{target}/bias", bias, biases)

  def finish(self, ignored: Iterable[str]) -> dict:
    unused = sorted(
      k
      for k in self.state
      if k not in self.used and not any(re.search(p, k) for p in ignored)
    )
    if unused:
      shown = ", ".join(
        f"{k!r} {tuple(self.state[k].shape)}" for k in unused[:10]
      )
      raise CheckpointError(
        f"{len(unused)} unexpected key(s) in the checkpoint, neither converted "
        f"nor ignored on purpose: {shown}{' ...' if len(unused) > 10 else ''}."
      )
    missing = sorted(set(self.expected) - set(self.params))
    if missing:
      raise CheckpointError(
        f"model params not filled by the checkpoint: {missing}."
      )
    # One device_put of the whole tree: no per-leaf eager op dispatch.
    return flax.traverse_util.unflatten_dict(
      jax.device_put(
        {k: np.asarray(v, order="C") for k, v in self.params.items()}
      ),
      sep="/",
    )


# Source names of one ViT, per layout. Linear layers are given by prefix
# (``.weight``/``.bias``); the qkv projection by lists of weight and bias keys.
@dataclasses.dataclass(frozen=True)
class _ViTNames:
  patch: str
  cls: str
  pos: str
  pre_norm: str | None
  block: str
  norm1: str
  qkv_weights: tuple[str, ...]
  qkv_biases: tuple[str, ...]
  out: str
  norm2: str
  fc1: str
  fc2: str
  final_norm: str


_OPENAI_VIT = _ViTNames(
  patch="conv1",
  cls="class_embedding",
  pos="positional_embedding",
  pre_norm="ln_pre",
  block="transformer.resblocks.{i}.",
  norm1="ln_1",
  qkv_weights=("attn.in_proj_weight",),
  qkv_biases=("attn.in_proj_bias",),
  out="attn.out_proj",
  norm2="ln_2",
  fc1="mlp.c_fc",
  fc2="mlp.c_proj",
  final_norm="ln_post",
)
_HF_CLIP_VIT = _ViTNames(
  patch="embeddings.patch_embedding",
  cls="embeddings.class_embedding",
  pos="embeddings.position_embedding.weight",
  pre_norm="pre_layrnorm",
  block="encoder.layers.{i}.",
  norm1="layer_norm1",
  qkv_weights=tuple(f"self_attn.{n}_proj.weight" for n in "qkv"),
  qkv_biases=tuple(f"self_attn.{n}_proj.bias" for n in "qkv"),
  out="self_attn.out_proj",
  norm2="layer_norm2",
  fc1="mlp.fc1",
  fc2="mlp.fc2",
  final_norm="post_layernorm",
)
_HF_BLIP_VIT = dataclasses.replace(
  _HF_CLIP_VIT,
  pos="embeddings.position_embedding",
  pre_norm=None,
  qkv_weights=("self_attn.qkv.weight",),
  qkv_biases=("self_attn.qkv.bias",),
  out="self_attn.projection",
)
_TIMM_VIT = _ViTNames(
  patch="patch_embed.proj",
  cls="cls_token",
  pos="pos_embed",
  pre_norm=None,
  block="blocks.{i}.",
  norm1="norm1",
  qkv_weights=("attn.qkv.weight",),
  qkv_biases=("attn.qkv.bias",),
  out="attn.proj",
  norm2="norm2",
  fc1="mlp.fc1",
  fc2="mlp.fc2",
  final_norm="norm",
)


def _convert_vit(c: _Converter, names: _ViTNames, prefix: str, cfg: ViTConfig):
  """Image tower: patch conv, CLS, (resized) positions, blocks, norms."""
  t = "vision/"
  key = prefix + names.patch + ".weight"
  c.put(t + "patch_embed/kernel", c.take(key).transpose(2, 3, 1, 0), key)
  if cfg.patch_bias:
    c.copy(t + "patch_embed/bias", prefix + names.patch + ".bias")
  key = prefix + names.cls
  c.put(t + "cls_token", c.take(key).reshape(-1), key)
  key = prefix + names.pos
  pos = c.take(key)
  pos = (
    pos.reshape(pos.shape[-2:]) if pos.ndim == 3 and pos.shape[0] == 1 else pos
  )
  if pos.ndim == 2 and pos.shape[0] != cfg.num_tokens:
    pos = resize_position_embedding(pos, cfg.grid_size)
  c.put(t + "pos_embedding", pos, key)
  if names.pre_norm is not None:
    c.norm(t + "pre_norm", prefix + names.pre_norm)
  _convert_pre_ln_blocks(c, t, prefix, names, cfg.depth)
  c.norm(t + "final_norm", prefix + names.final_norm)


def _convert_pre_ln_blocks(
  c: _Converter, t: str, prefix: str, names, depth: int
):
  """Pre-LN transformer blocks (CLIP image and text towers, timm ViT)."""
  for i in range(depth):
    src = prefix + names.block.format(i=i)
    dst = f"{t}block_{i}/"
    c.norm(dst + "layer_norm1", src + names.norm1)
    c.fused(
      dst + "attn/qkv",
      [src + w for w in names.qkv_weights],
      [src + b for b in names.qkv_biases],
    )
    c.linear(
      dst + "attn/out", src + names.out + ".weight", src + names.out + ".bias"
    )
    c.norm(dst + "layer_norm2", src + names.norm2)
    c.linear(
      dst + "mlp/fc1", src + names.fc1 + ".weight", src + names.fc1 + ".bias"
    )
    c.linear(
      dst + "mlp/fc2", src + names.fc2 + ".weight", src + names.fc2 + ".bias"
    )


def _convert_bert(c: _Converter, prefix: str, cfg: BertConfig):
  """BERT text mode (same key names in HF BERT, HF BLIP text, ALBEF, BLIP)."""
  t = "text/"
  c.copy(
    t + "word_embeddings/embedding",
    prefix + "embeddings.word_embeddings.weight",
  )
  c.copy(
    t + "position_embeddings/embedding",
    prefix + "embeddings.position_embeddings.weight",
  )
  if cfg.type_vocab_size:
    c.copy(
      t + "token_type_embeddings/embedding",
      prefix + "embeddings.token_type_embeddings.weight",
    )
  c.norm(t + "embed_norm", prefix + "embeddings.LayerNorm")
  for i in range(cfg.depth):
    src = f"{prefix}encoder.layer.{i}."
    dst = f"{t}block_{i}/"
    qkv = [f"{src}attention.self.{n}" for n in ("query", "key", "value")]
    c.fused(
      dst + "attn/qkv", [n + ".weight" for n in qkv], [n + ".bias" for n in qkv]
    )
    c.linear(
      dst + "attn/out",
      src + "attention.output.dense.weight",
      src + "attention.output.dense.bias",
    )
    c.norm(dst + "attn_norm", src + "attention.output.LayerNorm")
    c.linear(
      dst + "mlp/fc1",
      src + "intermediate.dense.weight",
      src + "intermediate.dense.bias",
    )
    c.linear(
      dst + "mlp/fc2", src + "output.dense.weight", src + "output.dense.bias"
    )
    c.norm(dst + "mlp_norm", src + "output.LayerNorm")


def _convert_clip_text(c: _Converter, openai: bool, cfg: CLIPTextConfig):
  t = "text/"
  if openai:
    c.copy(t + "token_embedding/embedding", "token_embedding.weight")
    c.copy(t + "pos_embedding", "positional_embedding")
    names, prefix, final = _OPENAI_VIT, "", "ln_final"
  else:
    c.copy(
      t + "token_embedding/embedding",
      "text_model.embeddings.token_embedding.weight",
    )
    c.copy(
      t + "pos_embedding", "text_model.embeddings.position_embedding.weight"
    )
    names, prefix, final = (
      _HF_CLIP_VIT,
      "text_model.",
      "text_model.final_layer_norm",
    )
  _convert_pre_ln_blocks(c, t, prefix, names, cfg.depth)
  c.norm(t + "final_norm", final)


@functools.lru_cache(maxsize=8)
def expected_params(config: VLMConfig) -> Mapping:
  """Abstract params tree (shapes, dtypes) of `VisionLanguageModel(config)`.

  Traced once per config (tracing the whole init takes seconds on CPU).
  """
  module = VisionLanguageModel(config)
  images = jax.ShapeDtypeStruct(
    (1, config.vision.image_size, config.vision.image_size, 3), jnp.float32
  )
  tokens = jax.ShapeDtypeStruct((1, 4), jnp.int32)
  variables = jax.eval_shape(module.init, jax.random.key(0), images, tokens)
  return variables["params"]


def convert_state_dict(
  state: Mapping[str, np.ndarray],
  layout: str,
  config: VLMConfig,
  temp: float | None = None,
) -> dict:
  """Source state dict -> params tree of `VisionLanguageModel(config)`.

  Args:
    state: source key -> array (float16/32/64; converted to float32).
    layout: one of `IGNORED`'s keys (see `detect_layout`).
    config: the target model; ``config.vision.image_size`` may differ from the
      checkpoint's, the position embeddings are then resized (bicubic).
    temp: temperature for ``hf_blip_retrieval`` (which stores none; default
      `BLIP_TEMP_INIT`). The other layouts take theirs from the checkpoint.

  Returns:
    The ``'params'`` collection (nested dict of float32 jax arrays).

  Raises:
    CheckpointError: missing / unexpected key, shape mismatch, unfilled param.
  """
  c = _Converter(state, expected_params(config))
  ignored = IGNORED[layout]
  if layout == "openai_clip":
    _convert_vit(c, _OPENAI_VIT, "visual.", config.vision)
    _convert_clip_text(c, True, config.text)
    c.copy("vision_proj/kernel", "visual.proj")
    c.copy("text_proj/kernel", "text_projection")
    c.put("logit_scale", c.take("logit_scale").reshape(()), "logit_scale")
  elif layout == "hf_clip":
    _convert_vit(c, _HF_CLIP_VIT, "vision_model.", config.vision)
    _convert_clip_text(c, False, config.text)
    c.linear("vision_proj", "visual_projection.weight", None)
    c.linear("text_proj", "text_projection.weight", None)
    c.put("logit_scale", c.take("logit_scale").reshape(()), "logit_scale")
  elif layout == "hf_blip":
    _convert_vit(c, _HF_BLIP_VIT, "vision_model.", config.vision)
    _convert_bert(c, "text_model.", config.text)
    c.linear(
      "text_pooler",
      "text_model.pooler.dense.weight",
      "text_model.pooler.dense.bias",
    )
    c.linear("vision_proj", "visual_projection.weight", None)
    c.linear("text_proj", "text_projection.weight", None)
    c.put("logit_scale", c.take("logit_scale").reshape(()), "logit_scale")
  elif layout == "hf_blip_retrieval":
    _convert_vit(c, _HF_BLIP_VIT, "vision_model.", config.vision)
    _convert_bert(c, "text_encoder.", config.text)
    c.linear("vision_proj", "vision_proj.weight", "vision_proj.bias")
    c.linear("text_proj", "text_proj.weight", "text_proj.bias")
    c.put(
      "temp",
      np.asarray(BLIP_TEMP_INIT if temp is None else temp, np.float32),
      [],
    )
  elif layout in ("albef", "blip"):
    _convert_vit(c, _TIMM_VIT, "visual_encoder.", config.vision)
    prefix = _text_prefix(state)
    _convert_bert(c, prefix, config.text)
    if layout == "albef":
      fusion = re.escape(prefix) + r"encoder\.layer\.(\d+)\."
      ignored = ignored + tuple(
        rf"^{re.escape(prefix)}encoder\.layer\.{i}\."
        for i in range(config.text.depth, _count_layers(state, fusion))
      )
    c.linear("vision_proj", "vision_proj.weight", "vision_proj.bias")
    c.linear("text_proj", "text_proj.weight", "text_proj.bias")
    c.put("temp", c.take("temp").reshape(()), "temp")
  else:
    raise CheckpointError(
      f"unknown layout {layout!r}; expected one of {sorted(IGNORED)}."
    )
  return c.finish(ignored)
