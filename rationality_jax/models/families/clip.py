"""CLIP (Radford et al. 2021): OpenAI's checkpoints, HF ``CLIPModel``, random inits.

Layouts:

* ``openai_clip``: OpenAI's ``ViT-B-16.pt`` (TorchScript archive, read
  without running it) or a plain state dict (``visual.*``,
  ``transformer.resblocks.*``, ``token_embedding``, ``ln_final``,
  ``text_projection``, ``logit_scale``). No config: sizes from the shapes as
  OpenAI's ``build_model`` (heads = width // 64).
* ``hf_clip``: a HF ``CLIPModel`` directory (``vision_model.*``,
  ``text_model.*``, ``visual_projection``, ``text_projection``,
  ``logit_scale``) with its ``config.json``.

Defaults: CLIP's pixel statistics; the linear probe on the projected image
embedding; FLCP at the fixed temperature 0.07 (the study's release).
`vlm_config` builds a CLIP from size keywords; `ARCHITECTURES` holds the
sizes of ``random:tiny``, ``random:demo``, ``random:b16``, ``random:b32``.
"""

from __future__ import annotations

from rationality_jax.models import convert
from rationality_jax.models import source_configs
from rationality_jax.models import tokenize
from rationality_jax.models.families.base import Family
from rationality_jax.models.families.base import Layout
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vlm import VLMConfig

# Random-init sizes (the keywords of `vlm_config`).
ARCHITECTURES = {
  "tiny": dict(
    image_size=32,
    patch_size=8,
    width=32,
    depth=2,
    num_heads=2,
    mlp_dim=64,
    context_length=16,
    text_width=32,
    text_depth=2,
    text_heads=2,
    text_mlp_dim=64,
    embed_dim=16,
  ),
  "demo": dict(
    image_size=64,
    patch_size=8,
    width=64,
    depth=3,
    num_heads=4,
    mlp_dim=128,
    context_length=16,
    text_width=64,
    text_depth=2,
    text_heads=4,
    text_mlp_dim=128,
    embed_dim=32,
  ),
  # OpenAI's ViT-B/16 sizes (random init: benchmarks, shape checks).
  "b16": dict(
    image_size=224,
    patch_size=16,
    width=768,
    depth=12,
    num_heads=12,
    mlp_dim=3072,
    context_length=77,
    text_width=512,
    text_depth=12,
    text_heads=8,
    text_mlp_dim=2048,
    embed_dim=512,
  ),
}
ARCHITECTURES["b32"] = dict(ARCHITECTURES["b16"], patch_size=32)


def vlm_config(
  *,
  image_size: int,
  patch_size: int,
  width: int,
  depth: int,
  num_heads: int,
  mlp_dim: int,
  context_length: int,
  text_width: int,
  text_depth: int,
  text_heads: int,
  text_mlp_dim: int,
  embed_dim: int,
) -> VLMConfig:
  """A CLIP-architecture `VLMConfig` (OpenAI's flavour: quick-GELU, ``ln_pre``,
  no patch bias, eps 1e-5, 49,408-token vocabulary, ``logit_scale``).

  ``vlm_config(**ARCHITECTURES['demo'])``; the keywords are also the fields of
  the training configs' ``config.model``.
  """
  vision = ViTConfig(
    image_size=image_size,
    patch_size=patch_size,
    width=width,
    depth=depth,
    num_heads=num_heads,
    mlp_dim=mlp_dim,
  )
  text = CLIPTextConfig(
    context_length=context_length,
    width=text_width,
    depth=text_depth,
    num_heads=text_heads,
    mlp_dim=text_mlp_dim,
  )
  return VLMConfig(
    family="clip",
    vision=vision,
    text=text,
    embed_dim=embed_dim,
    projection_bias=False,
  )


# ------------------------------------------------------------- OpenAI ----

OPENAI_VIT = convert.ViTNames(
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


def _openai_config(state, hf_config) -> VLMConfig:
  del hf_config
  vision_width, _, patch, _ = state["visual.conv1.weight"].shape
  vision = ViTConfig(
    image_size=patch
    * source_configs.grid_side(state["visual.positional_embedding"].shape[0]),
    patch_size=patch,
    width=vision_width,
    depth=source_configs.count_layers(
      state, r"visual\.transformer\.resblocks\.(\d+)\."
    ),
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
    depth=source_configs.count_layers(
      state, r"transformer\.resblocks\.(\d+)\."
    ),
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


def _openai_convert(c: convert.Converter, config: VLMConfig, temp):
  del temp
  convert.convert_vit(c, OPENAI_VIT, "visual.", config.vision)
  convert.convert_clip_text(
    c,
    OPENAI_VIT,
    "",
    ("token_embedding.weight", "positional_embedding"),
    "ln_final",
    config.text,
  )
  c.copy("vision_proj/kernel", "visual.proj")
  c.copy("text_proj/kernel", "text_projection")
  c.scalar("logit_scale", "logit_scale")


OPENAI = Layout(
  name="openai_clip",
  family="clip",
  description="OpenAI CLIP .pt (visual.conv1.weight)",
  detect=lambda keys: "visual.conv1.weight" in keys,
  config=_openai_config,
  convert=_openai_convert,
  # The TorchScript archives' extra entries (clip.load's build_model drops them).
  ignored=(r"^(input_resolution|context_length|vocab_size)$",),
)

# --------------------------------------------------------- HF CLIPModel ----


def _hf_config(state, hf_config) -> VLMConfig:
  del state
  t = hf_config.text_config
  text = CLIPTextConfig(
    vocab_size=t.vocab_size,
    context_length=t.max_position_embeddings,
    width=t.hidden_size,
    depth=t.num_hidden_layers,
    num_heads=t.num_attention_heads,
    mlp_dim=t.intermediate_size,
    activation=source_configs.hf_activation(t.hidden_act),
    layer_norm_eps=t.layer_norm_eps,
    # HF pools at argmax(ids) for the legacy eos_token_id 2, as OpenAI does.
    eot_token_id=None if t.eos_token_id == 2 else t.eos_token_id,
  )
  return VLMConfig(
    family="clip",
    vision=source_configs.hf_vit_config(
      hf_config.vision_config, patch_bias=False, pre_norm=True
    ),
    text=text,
    embed_dim=hf_config.projection_dim,
    projection_bias=False,
  )


def _hf_convert(c: convert.Converter, config: VLMConfig, temp):
  del temp
  convert.convert_vit(c, convert.HF_CLIP_VIT, "vision_model.", config.vision)
  convert.convert_clip_text(
    c,
    convert.HF_CLIP_VIT,
    "text_model.",
    (
      "text_model.embeddings.token_embedding.weight",
      "text_model.embeddings.position_embedding.weight",
    ),
    "text_model.final_layer_norm",
    config.text,
  )
  c.linear("vision_proj", "visual_projection.weight", None)
  c.linear("text_proj", "text_projection.weight", None)
  c.scalar("logit_scale", "logit_scale")


HF = Layout(
  name="hf_clip",
  family="clip",
  description="HF CLIPModel directory (vision_model.*, text_model.*)",
  detect=lambda keys: (
    "vision_model.embeddings.class_embedding" in keys
    and "text_model.embeddings.token_embedding.weight" in keys
  ),
  config=_hf_config,
  convert=_hf_convert,
  ignored=(r"\.position_ids$",),
  hf_config_fields=(
    "projection_dim",
    *source_configs.HF_VISION_FIELDS,
    *source_configs.HF_TEXT_FIELDS,
    "text_config.eos_token_id",
  ),
)

FAMILY = Family(
  name="clip",
  normalization="clip",
  lp_feature="embedding",
  flcp_temperature=0.07,
  context_length=77,
  context_from_model=True,
  build_tokenizer=lambda length: tokenize.clip_bpe("clip", length),
  layouts=(OPENAI, HF),
  hub_ids=("openai/clip-vit-base-patch16", "openai/clip-vit-base-patch32"),
  architectures={
    name: vlm_config(**sizes) for name, sizes in ARCHITECTURES.items()
  },
)
