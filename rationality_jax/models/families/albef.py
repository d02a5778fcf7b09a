"""ALBEF (Li et al. 2021), its image-text contrastive (ITC) path.

Layout ``albef``: the ``.pth`` files ALBEF's training scripts save,
``{'model': state_dict, 'optimizer', 'lr_scheduler', 'config', 'epoch'}``
(``ALBEF.pth``, the 14M pretraining checkpoint, and the retrieval ones). The
image tower is timm's ViT (``visual_encoder.*``, 256 px for pretraining, 384
for retrieval); the text tower is BERT with token types, under
``text_encoder.bert.`` (pretraining: ``BertForMaskedLM``) or
``text_encoder.`` (retrieval: ``BertModel``). Text mode runs the layers
before the first one with cross-attention (``fusion_layer``, 6); the fusion
layers, the MLM head (``text_encoder.cls.``), the ITM head, the momentum
encoders (``*_m.``) and the queues are ignored.

There is no official copy on the Hugging Face hub (no hub ids): load the
``.pth`` file.

Defaults: CLIP's pixel statistics (ALBEF's training transform uses them);
the linear probe on the ViT CLS token; FLCP trains ALBEF's own ``temp``.
"""

from __future__ import annotations

import re

from rationality_jax.models import convert
from rationality_jax.models import source_configs
from rationality_jax.models import tokenize
from rationality_jax.models.families.base import Family
from rationality_jax.models.families.base import Layout
from rationality_jax.models.vlm import VLMConfig

TEXT_PREFIXES = ("text_encoder.bert.", "text_encoder.")


def _text_prefix(keys) -> str:
  """``text_encoder.bert.`` (BertForMaskedLM) or ``text_encoder.`` (BertModel)."""
  return next(
    p for p in TEXT_PREFIXES if p + "embeddings.word_embeddings.weight" in keys
  )


def _layer_pattern(prefix: str) -> str:
  return re.escape(prefix) + r"encoder\.layer\.(\d+)\."


def _fusion_layer(state, prefix: str) -> int:
  """The first text layer with cross-attention (ALBEF's ``fusion_layer``)."""
  layer = _layer_pattern(prefix)
  return min(
    (
      int(m.group(1))
      for k in state
      if (m := re.match(layer + "crossattention", k))
    ),
    default=source_configs.count_layers(state, layer),
  )


def _detect(keys: frozenset[str]) -> bool:
  return "visual_encoder.cls_token" in keys and any(
    p + "embeddings.token_type_embeddings.weight" in keys for p in TEXT_PREFIXES
  )


def _config(state, hf_config) -> VLMConfig:
  del hf_config
  prefix = _text_prefix(state)
  return source_configs.itc_config(
    "albef",
    source_configs.timm_vit_config(state),
    source_configs.bert_config(state, prefix, _fusion_layer(state, prefix)),
    state["vision_proj.weight"].shape[0],
  )


def _convert(c: convert.Converter, config: VLMConfig, temp):
  del temp
  prefix = _text_prefix(c.state)
  convert.convert_vit(c, convert.TIMM_VIT, "visual_encoder.", config.vision)
  convert.convert_bert(c, prefix, config.text)
  layers = source_configs.count_layers(c.state, _layer_pattern(prefix))
  c.ignore(
    *(
      rf"^{re.escape(prefix)}encoder\.layer\.{i}\."
      for i in range(config.text.depth, layers)
    )
  )
  convert.convert_itc_projections(c)


LAYOUT = Layout(
  name="albef",
  family="albef",
  description=(
    "ALBEF .pth (visual_encoder.cls_token, text_encoder with token types)"
  ),
  detect=_detect,
  config=_config,
  convert=_convert,
  ignored=(
    *convert.MOMENTUM_AND_QUEUES,
    r"\.position_ids$",
    r"^itm_head\.",
    r"^text_encoder\.cls\.",  # BertForMaskedLM's MLM head
  ),
)

FAMILY = Family(
  name="albef",
  normalization="clip",
  lp_feature="cls",
  flcp_temperature=0.0,
  context_length=30,
  context_from_model=False,
  build_tokenizer=lambda length: tokenize.bert_wordpiece("albef", length),
  layouts=(LAYOUT,),
)
