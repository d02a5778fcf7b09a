"""BLIP (Li et al. 2022), its image-text contrastive (ITC) path.

Layouts:

* ``blip``: the ``.pth`` files of BLIP's repository, ``{'model': state_dict,
  ...}``: ``model_base.pth`` (pretraining, 224 px, with the captioning
  ``text_decoder``) and the retrieval checkpoints (384 px). timm ViT
  (``visual_encoder.*``), BERT without token types under ``text_encoder.``
  (12 layers, each with a cross-attention that text mode skips), vocabulary
  30,524. The decoder, cross-attention, ITM head, momentum encoders and
  queues are ignored.
* ``hf_blip_retrieval``: a HF ``BlipForImageTextRetrieval`` directory
  (``vision_model.*``, ``text_encoder.*``, ``vision_proj``, ``text_proj``).
  It stores no temperature: ``temp`` is BLIP's initial 0.07 unless
  ``models.load(..., temp=)`` gives one.
* ``hf_blip``: a HF ``BlipModel`` directory (``text_model.*`` with a pooler,
  ``visual_projection``/``text_projection`` without bias, ``logit_scale``);
  an HF-only variant whose text pooler and twice-applied ``post_layernorm``
  are reproduced.

Hub ids: the retrieval models ``Salesforce/blip-itm-{base,large}-{coco,flickr}``.

Defaults: CLIP's pixel statistics (BLIP's transforms use them); the linear
probe on the ViT CLS token; FLCP trains BLIP's own ``temp``.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from rationality_jax.models import convert
from rationality_jax.models import source_configs
from rationality_jax.models import tokenize
from rationality_jax.models.families.base import Family
from rationality_jax.models.families.base import Layout
from rationality_jax.models.text import BertConfig
from rationality_jax.models.vlm import VLMConfig

# BLIP's initial temperature (``nn.Parameter(0.07 * torch.ones([]))``).
TEMP_INIT = 0.07
_CROSS_ATTENTION = r"^text_encoder\.encoder\.layer\.\d+\.crossattention\."

# ------------------------------------------------------------ BLIP .pth ----


def _detect(keys: frozenset[str]) -> bool:
  return (
    "visual_encoder.cls_token" in keys
    and "text_encoder.embeddings.word_embeddings.weight" in keys
    and "text_encoder.embeddings.token_type_embeddings.weight" not in keys
  )


def _config(state, hf_config) -> VLMConfig:
  del hf_config
  prefix = "text_encoder."
  depth = source_configs.count_layers(
    state, r"text_encoder\.encoder\.layer\.(\d+)\."
  )
  return source_configs.itc_config(
    "blip",
    source_configs.timm_vit_config(state),
    source_configs.bert_config(state, prefix, depth),
    state["vision_proj.weight"].shape[0],
  )


def _convert(c: convert.Converter, config: VLMConfig, temp):
  del temp
  convert.convert_vit(c, convert.TIMM_VIT, "visual_encoder.", config.vision)
  convert.convert_bert(c, "text_encoder.", config.text)
  convert.convert_itc_projections(c)


LAYOUT = Layout(
  name="blip",
  family="blip",
  description="BLIP .pth (visual_encoder.cls_token, text_encoder without "
  "token types)",
  detect=_detect,
  config=_config,
  convert=_convert,
  ignored=(
    *convert.MOMENTUM_AND_QUEUES,
    r"\.position_ids$",
    r"^itm_head\.",
    r"^text_decoder\.",  # captioning decoder of model_base.pth
    _CROSS_ATTENTION,
  ),
)

# ----------------------------------------------------------- HF layouts ----

HF_VIT = dataclasses.replace(
  convert.HF_CLIP_VIT,
  pos="embeddings.position_embedding",
  pre_norm=None,
  qkv_weights=("self_attn.qkv.weight",),
  qkv_biases=("self_attn.qkv.bias",),
  out="self_attn.projection",
)


def _hf_vision(hf_config):
  """HF BLIP's vision tower: biased patch embedding, no pre-LayerNorm."""
  return source_configs.hf_vit_config(
    hf_config.vision_config, patch_bias=True, pre_norm=False
  )


def _hf_text(t) -> BertConfig:
  if t.hidden_act != "gelu":
    raise convert.CheckpointError(
      f"BLIP text hidden_act {t.hidden_act!r} is not supported "
      "(BERT uses exact 'gelu')."
    )
  return BertConfig(
    vocab_size=t.vocab_size,
    width=t.hidden_size,
    depth=t.num_hidden_layers,
    num_heads=t.num_attention_heads,
    mlp_dim=t.intermediate_size,
    max_positions=t.max_position_embeddings,
    type_vocab_size=0,
    layer_norm_eps=t.layer_norm_eps,
  )


def _hf_retrieval_config(state, hf_config) -> VLMConfig:
  del state
  return source_configs.itc_config(
    "blip",
    _hf_vision(hf_config),
    _hf_text(hf_config.text_config),
    hf_config.image_text_hidden_size,
  )


def _hf_retrieval_convert(c: convert.Converter, config: VLMConfig, temp):
  convert.convert_vit(c, HF_VIT, "vision_model.", config.vision)
  convert.convert_bert(c, "text_encoder.", config.text)
  c.linear("vision_proj", "vision_proj.weight", "vision_proj.bias")
  c.linear("text_proj", "text_proj.weight", "text_proj.bias")
  temp = TEMP_INIT if temp is None else temp
  if not (np.isfinite(temp) and temp > 0):
    raise convert.CheckpointError(f"temp={temp} must be finite and > 0.")
  c.put("temp", np.asarray(temp, np.float32), [])


HF_RETRIEVAL = Layout(
  name="hf_blip_retrieval",
  family="blip",
  description="HF BlipForImageTextRetrieval directory (vision_model.*, "
  "text_encoder.*)",
  detect=lambda keys: (
    "vision_model.embeddings.class_embedding" in keys
    and "text_encoder.embeddings.word_embeddings.weight" in keys
  ),
  config=_hf_retrieval_config,
  convert=_hf_retrieval_convert,
  ignored=(
    r"\.position_ids$",
    r"^itm_head\.",  # image-text matching head (ITM path)
    _CROSS_ATTENTION,
  ),
  hf_config_fields=(
    "image_text_hidden_size",
    *source_configs.HF_VISION_FIELDS,
    *source_configs.HF_TEXT_FIELDS,
  ),
  stores_temperature=False,
)


def _hf_model_config(state, hf_config) -> VLMConfig:
  del state
  return VLMConfig(
    family="blip",
    vision=_hf_vision(hf_config),
    text=_hf_text(hf_config.text_config),
    embed_dim=hf_config.projection_dim,
    projection_bias=False,
    text_pooler=True,
    vision_cls_norm_twice=True,
  )


def _hf_model_convert(c: convert.Converter, config: VLMConfig, temp):
  del temp
  convert.convert_vit(c, HF_VIT, "vision_model.", config.vision)
  convert.convert_bert(c, "text_model.", config.text)
  c.linear(
    "text_pooler",
    "text_model.pooler.dense.weight",
    "text_model.pooler.dense.bias",
  )
  c.linear("vision_proj", "visual_projection.weight", None)
  c.linear("text_proj", "text_projection.weight", None)
  c.scalar("logit_scale", "logit_scale")


HF_MODEL = Layout(
  name="hf_blip",
  family="blip",
  description="HF BlipModel directory (vision_model.*, text_model.pooler)",
  detect=lambda keys: (
    "vision_model.embeddings.class_embedding" in keys
    and "text_model.pooler.dense.weight" in keys
  ),
  config=_hf_model_config,
  convert=_hf_model_convert,
  ignored=(
    r"\.position_ids$",
    r"^text_model\.encoder\.layer\.\d+\.crossattention\.",
  ),
  hf_config_fields=(
    "projection_dim",
    *source_configs.HF_VISION_FIELDS,
    *source_configs.HF_TEXT_FIELDS,
  ),
)

FAMILY = Family(
  name="blip",
  normalization="clip",
  lp_feature="cls",
  flcp_temperature=0.0,
  context_length=35,
  context_from_model=False,
  build_tokenizer=lambda length: tokenize.bert_wordpiece(
    "blip", length, bos_token="[DEC]", extra_special_tokens=("[ENC]",)
  ),
  layouts=(LAYOUT, HF_RETRIEVAL, HF_MODEL),
  hub_ids=tuple(
    f"Salesforce/blip-itm-{size}-{data}"
    for size in ("base", "large")
    for data in ("coco", "flickr")
  ),
)
