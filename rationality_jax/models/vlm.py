"""Two towers + projections + a temperature: CLIP, ALBEF and BLIP (ITC path).

Submodules: ``vision`` (`VisionTransformer`), ``text`` (`CLIPTextTransformer`
or `BertEncoder`), ``vision_proj`` and ``text_proj`` (Dense to the joint
space), ``text_pooler`` (only HF ``BlipModel``: dense + tanh on [CLS]), and one
scalar param: ``logit_scale`` (CLIP, HF BlipModel) or ``temp`` (ALBEF, BLIP).

So ``perturbations['vision']['block_3']['attn']['probs']`` is block 3's
attention when calling the VLM.
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from rationality_jax.models.text import BertConfig
from rationality_jax.models.text import BertEncoder
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.text import CLIPTextTransformer
from rationality_jax.models.vit import VisionTransformer
from rationality_jax.models.vit import ViTConfig

# CLIP's training keeps exp(logit_scale) <= 100 (OpenAI clamps logit_scale to
# ln 100); the cap `logit_multiplier` applies when a loss asks for it.
MAX_LOGIT_SCALE = 100.0
PRECISIONS = tuple(map(jnp.dtype, ("float32", "bfloat16", "float16")))


@dataclasses.dataclass(frozen=True)
class VLMConfig:
  """A two-tower model.

  Attributes:
    family: name of its `rationality_jax.models.families` plug-in
      (``'clip'``, ``'albef'``, ``'blip'``): tokenizer, normalization,
      method defaults. ``models.family(config)`` looks it up.
    vision: the image tower.
    text: `CLIPTextConfig` (CLIP) or `BertConfig` (ALBEF, BLIP).
    embed_dim: joint embedding size (CLIP 512/768, ALBEF/BLIP 256).
    projection_bias: whether the projections have biases (ALBEF/BLIP yes).
    text_pooler: HF ``BlipModel`` only: dense+tanh on [CLS] before projecting.
    vision_cls_norm_twice: HF ``BlipModel`` only: its pooled image output
      applies ``post_layernorm`` a second time to the CLS token; reproduced.
    logit: ``'logit_scale'``: logits = exp(logit_scale) * cosine;
      ``'temp'``: logits = cosine / temp, temp clipped to `temp_range`.
    temp_range: (low, high) for ``'temp'``; BLIP clamps to (0.001, 0.5);
      ALBEF's ITC uses temp as stored (it clamps in training), None = no clip.
  """

  family: str
  vision: ViTConfig
  text: CLIPTextConfig | BertConfig
  embed_dim: int
  projection_bias: bool
  text_pooler: bool = False
  vision_cls_norm_twice: bool = False
  logit: str = "logit_scale"
  temp_range: tuple[float, float] | None = None

  def __post_init__(self):
    if self.logit not in ("logit_scale", "temp"):
      raise ValueError(f"logit {self.logit!r} must be 'logit_scale' or 'temp'.")


class VisionLanguageModel(nn.Module):
  """CLIP / ALBEF / BLIP image-text contrastive model.

  Attributes:
    config: `VLMConfig`.
    dtype: compute dtype: float32 (default), bfloat16 or float16 (GPU/TPU).
      Softmax, LayerNorm statistics and attention logits run in float32; the
      embeddings and logits come out in float32.
    param_dtype: dtype of the parameters `init` creates (default float32);
      `with_precision` converts a loaded model. The scalar ``logit_scale`` /
      ``temp`` stays float32.
    sow_attention: image-tower blocks that materialise, perturb and sow their
      attention probabilities (`VisionTransformer.sow_attention`); none by
      default. `rationality_jax.explain.make_explainer` sets it.
    cls_only: the image tower's last block computes the CLS token only
      (`VisionTransformer.cls_only`; True by default, since `encode_image`
      reads nothing else). An explanation that reads the last block's output
      tokens (Grad-CAM on them) turns it off.
  """

  config: VLMConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  sow_attention: tuple[int, ...] = ()
  cls_only: bool = True

  def setup(self):
    cfg = self.config
    precision = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    self.vision = VisionTransformer(
      cfg.vision,
      sow_attention=self.sow_attention,
      cls_only=self.cls_only,
      **precision,
    )
    if isinstance(cfg.text, CLIPTextConfig):
      self.text = CLIPTextTransformer(cfg.text, **precision)
    else:
      self.text = BertEncoder(cfg.text, **precision)
    if cfg.text_pooler:
      self.text_pooler = nn.Dense(cfg.text.width, **precision)
    self.vision_proj = nn.Dense(
      cfg.embed_dim, use_bias=cfg.projection_bias, **precision
    )
    self.text_proj = nn.Dense(
      cfg.embed_dim, use_bias=cfg.projection_bias, **precision
    )
    if cfg.logit == "logit_scale":
      self.logit_scale = self.param(
        "logit_scale", nn.initializers.constant(2.6592), (), jnp.float32
      )
    else:
      self.temp = self.param(
        "temp", nn.initializers.constant(0.07), (), jnp.float32
      )

  def encode_image(self, images: jax.Array, project: bool = True) -> jax.Array:
    """Image embeddings.

    Args:
      images: [B, S, S, 3] float32, already normalized (CLIP or ImageNet
        mean/std), S = config.vision.image_size.
      project: True: the projected, un-normalized embedding [B, embed_dim]
        (zero-shot, CLIP's linear probe). False: the image tower's CLS output
        after its final LayerNorm [B, width] (ALBEF/BLIP linear probe on the
        768-d ViT CLS token).

    Returns:
      [B, embed_dim] or [B, width], float32.
    """
    tokens = self.vision(images)
    cls = tokens[:, 0]
    if self.config.vision_cls_norm_twice:
      norm = self.vision.variables["params"]["final_norm"]
      cls = cls.astype(jnp.float32)  # LayerNorm statistics in float32
      mean = cls.mean(-1, keepdims=True)
      variance = jnp.square(cls - mean).mean(-1, keepdims=True)
      cls = (cls - mean) * jax.lax.rsqrt(
        variance + self.config.vision.layer_norm_eps
      )
      cls = cls * norm["scale"].astype(jnp.float32) + norm["bias"].astype(
        jnp.float32
      )
      cls = cls.astype(self.dtype)
    if project:
      cls = self.vision_proj(cls)
    return cls.astype(jnp.float32)

  def encode_text(
    self,
    token_ids: jax.Array,
    attention_mask: jax.Array | None = None,
    project: bool = True,
  ) -> jax.Array:
    """Text embeddings.

    Args:
      token_ids: [B, T] int from `rationality_jax.models.tokenizer(family)`.
      attention_mask: [B, T], 1 = real token. Needed for BERT (ALBEF/BLIP) when
        texts are padded; CLIP's causal pooling does not need it.
      project: True: projected, un-normalized [B, embed_dim]; False: the pooled
        text tower output [B, text width].

    Returns:
      [B, embed_dim] or [B, text width], float32.
    """
    chex.assert_rank(token_ids, 2)
    tokens = self.text(token_ids, attention_mask)
    if isinstance(self.config.text, CLIPTextConfig):
      pooled = self.text.pooled(tokens, token_ids)
    else:
      pooled = tokens[:, 0]
    if self.config.text_pooler:
      pooled = jnp.tanh(self.text_pooler(pooled))
    if project:
      pooled = self.text_proj(pooled)
    return pooled.astype(jnp.float32)

  def logit_multiplier(
    self,
    temp_range: tuple[float, float] | None = None,
    max_scale: float | None = None,
  ) -> jax.Array:
    """Scalar multiplying cosine similarities.

    ``'logit_scale'``: exp(logit_scale), capped at ``max_scale`` when given.
    ``'temp'``: 1 / temp, temp clipped to ``temp_range`` when given, else to
    ``config.temp_range`` (None: unclipped). Evaluation calls it without
    arguments; a training loss passes its caps (FLCP: `MAX_LOGIT_SCALE` and
    ``config.flcp.temp_range``).
    """
    if self.config.logit == "logit_scale":
      scale = jnp.exp(self.logit_scale)
      return scale if max_scale is None else jnp.minimum(scale, max_scale)
    temp_range = temp_range or self.config.temp_range
    temp = self.temp if temp_range is None else jnp.clip(self.temp, *temp_range)
    return 1.0 / temp

  def similarity(
    self, image_embeds: jax.Array, text_embeds: jax.Array
  ) -> jax.Array:
    """Logits from (un-normalized) embeddings, e.g. with cached class-prompt embeddings.

    Args:
      image_embeds: [B_img, E] from `encode_image`.
      text_embeds: [B_txt, E] from `encode_text`.

    Returns:
      [B_img, B_txt] float32 = `logit_multiplier` x cosine similarity.
    """
    chex.assert_rank([image_embeds, text_embeds], 2)
    return (
      self.logit_multiplier()
      * normalize(image_embeds)
      @ normalize(text_embeds).T
    )

  def __call__(
    self,
    images: jax.Array,
    token_ids: jax.Array,
    attention_mask: jax.Array | None = None,
  ) -> jax.Array:
    """Image-text logits.

    Args:
      images: [B_img, S, S, 3] normalized images.
      token_ids: [B_txt, T] token ids; attention_mask: [B_txt, T] or None.

    Returns:
      logits_per_image: [B_img, B_txt] float32 = multiplier x cosine similarity.
    """
    return self.similarity(
      self.encode_image(images), self.encode_text(token_ids, attention_mask)
    )


def with_precision(
  module: VisionLanguageModel, params: dict, dtype, param_dtype
) -> tuple[VisionLanguageModel, dict]:
  """The model computing in `dtype` with its params stored in `param_dtype`.

  Args:
    module: a `VisionLanguageModel` (e.g. from `models.load`).
    params: its params (any dtype, e.g. the float32 of a checkpoint).
    dtype: compute dtype: float32, bfloat16 or float16 (a name or a dtype).
    param_dtype: storage dtype of the params, same choices.

  Returns:
    (module with ``dtype``/``param_dtype`` set, params cast to `param_dtype`).
    Every floating array with at least one axis is cast; the scalars
    (``logit_scale``, ``temp``) stay float32, as `VisionLanguageModel.init`
    creates them, because they scale every logit. Nothing else changes: the
    softmax, LayerNorm statistics and the outputs stay float32.
  """
  dtype, param_dtype = jnp.dtype(dtype), jnp.dtype(param_dtype)
  for name, value in (("dtype", dtype), ("param_dtype", param_dtype)):
    if value not in PRECISIONS:
      raise ValueError(
        f"{name}={value} is not one of {[str(p) for p in PRECISIONS]}."
      )

  def cast(leaf):
    if leaf.ndim == 0 or not jnp.issubdtype(leaf.dtype, jnp.floating):
      return leaf
    return leaf.astype(param_dtype)

  module = module.clone(dtype=dtype, param_dtype=param_dtype)
  return module, jax.tree.map(cast, params)


def normalize(x: jax.Array, eps: float = 1e-12) -> jax.Array:
  """L2-normalize the last axis ([..., D] -> [..., D]); zero stays zero."""
  return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)
