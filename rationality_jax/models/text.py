"""Text towers: CLIP's causal transformer and the BERT encoder of ALBEF/BLIP.

Both return all token outputs ``[B, T, D]``; the family projects one of them
(CLIP: the end-of-text token, `CLIPTextTransformer.pooled`; BERT: [CLS], index 0).
Their blocks are ``block_{i}`` and perturb/sow their output ``tokens`` like the
image tower; no explanation reads the text attention, so every text block runs
the fused `rationality_jax.models.vit.dot_product_attention`. ``dtype`` and
``param_dtype`` follow the image tower's precision policy.
"""

from __future__ import annotations

import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp

from rationality_jax.models.vit import MLP
from rationality_jax.models.vit import Attention
from rationality_jax.models.vit import Block


@dataclasses.dataclass(frozen=True)
class CLIPTextConfig:
  """CLIP's causal text transformer.

  Attributes:
    vocab_size: rows of the token embedding (49408 for OpenAI's BPE).
    context_length: positions (77).
    width, depth, num_heads, mlp_dim: transformer sizes.
    activation: ``'quick_gelu'`` for OpenAI weights.
    layer_norm_eps: LayerNorm epsilon (1e-5).
    eot_token_id: the text is pooled at the first occurrence of this id; None
      pools at ``argmax(token_ids)`` (OpenAI's rule, and HF's for configs with
      the legacy ``eos_token_id == 2``); both agree for OpenAI's tokenizer,
      whose end-of-text id 49407 is the largest.
  """

  vocab_size: int = 49408
  context_length: int = 77
  width: int = 512
  depth: int = 12
  num_heads: int = 8
  mlp_dim: int = 2048
  activation: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  eot_token_id: int | None = None


@dataclasses.dataclass(frozen=True)
class BertConfig:
  """A BERT encoder used in text mode (no cross-attention).

  Attributes:
    vocab_size: 30522 (ALBEF), 30524 (BLIP: + [DEC], [ENC]).
    width, depth, num_heads, mlp_dim: encoder sizes. ALBEF's ITC path runs only
      its first ``fusion_layer`` = 6 layers, so depth = 6 there.
    max_positions: rows of the position embedding (512).
    type_vocab_size: token-type rows (2 for ALBEF's BERT, 0 for BLIP: none).
    layer_norm_eps: 1e-12.
  """

  vocab_size: int = 30522
  width: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  max_positions: int = 512
  type_vocab_size: int = 2
  layer_norm_eps: float = 1e-12


class CLIPTextTransformer(nn.Module):
  """Token + position embeddings -> causal pre-LN blocks -> ``final_norm``.

  Params: ``token_embedding``, ``pos_embedding: [context_length, D]``,
  ``block_{i}``, ``final_norm``.
  """

  config: CLIPTextConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
    self, token_ids: jax.Array, attention_mask: jax.Array | None = None
  ) -> jax.Array:
    """Encode tokens.

    Args:
      token_ids: [B, T] int, T <= context_length.
      attention_mask: optional [B, T], 1 = real token. The causal mask alone
        already hides padding from the end-of-text token; with a mask the other
        token outputs match HF too.

    Returns:
      [B, T, D] after the final LayerNorm.
    """
    cfg = self.config
    chex.assert_rank(token_ids, 2)
    length = token_ids.shape[1]
    if length > cfg.context_length:
      raise ValueError(
        f"token_ids has {length} positions, the model has "
        f"{cfg.context_length}; truncate the text."
      )
    precision = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.Embed(
      cfg.vocab_size, cfg.width, name="token_embedding", **precision
    )(token_ids)
    pos_embedding = self.param(
      "pos_embedding",
      nn.initializers.normal(0.01),
      (cfg.context_length, cfg.width),
      self.param_dtype,
    )
    x = x + pos_embedding[:length].astype(self.dtype)
    mask = jnp.tril(jnp.ones((length, length), bool))[None, None]
    if attention_mask is not None:
      mask = mask & attention_mask.astype(bool)[:, None, None, :]
    for i in range(cfg.depth):
      x = Block(
        cfg.num_heads,
        cfg.mlp_dim,
        cfg.activation,
        cfg.layer_norm_eps,
        name=f"block_{i}",
        **precision,
      )(x, mask)
    return nn.LayerNorm(
      epsilon=cfg.layer_norm_eps, name="final_norm", **precision
    )(x)

  def pooled(self, tokens: jax.Array, token_ids: jax.Array) -> jax.Array:
    """[B, T, D] outputs, [B, T] ids -> [B, D] at the end-of-text token."""
    eot = self.config.eot_token_id
    position = jnp.argmax(
      token_ids if eot is None else token_ids == eot, axis=-1
    )
    return jnp.take_along_axis(tokens, position[:, None, None], axis=1)[:, 0]


class BertLayer(nn.Module):
  """Post-LayerNorm BERT layer: norm(x + attn(x)), then norm(x + mlp(x))."""

  num_heads: int
  mlp_dim: int
  layer_norm_eps: float
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
    """[B, T, D] tokens, [B, 1, 1, T] bool mask -> [B, T, D]."""
    precision = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = x + Attention(self.num_heads, name="attn", **precision)(x, mask)
    x = nn.LayerNorm(
      epsilon=self.layer_norm_eps, name="attn_norm", **precision
    )(x)
    x = x + MLP(self.mlp_dim, "gelu", name="mlp", **precision)(x)
    x = nn.LayerNorm(epsilon=self.layer_norm_eps, name="mlp_norm", **precision)(
      x
    )
    x = self.perturb("tokens", x)
    self.sow("intermediates", "tokens", x)
    return x


class BertEncoder(nn.Module):
  """BERT in text mode: embeddings + LayerNorm -> post-LN layers.

  Params: ``word_embeddings``, ``position_embeddings``,
  ``token_type_embeddings`` (if type_vocab_size), ``embed_norm``,
  ``block_{i}``. The text embedding is the [CLS] output, ``tokens[:, 0]``.
  """

  config: BertConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(
    self, token_ids: jax.Array, attention_mask: jax.Array | None = None
  ) -> jax.Array:
    """Encode tokens.

    Args:
      token_ids: [B, T] int, starting with [CLS] (or BLIP's [ENC] for ITM).
      attention_mask: [B, T], 1 = real token, 0 = padding; None = all real.

    Returns:
      [B, T, D] token outputs of the last layer.
    """
    cfg = self.config
    chex.assert_rank(token_ids, 2)
    length = token_ids.shape[1]
    precision = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = nn.Embed(
      cfg.vocab_size, cfg.width, name="word_embeddings", **precision
    )(token_ids)
    x = (
      x
      + nn.Embed(
        cfg.max_positions, cfg.width, name="position_embeddings", **precision
      )(jnp.arange(length))[None]
    )
    if cfg.type_vocab_size:
      x = x + nn.Embed(
        cfg.type_vocab_size,
        cfg.width,
        name="token_type_embeddings",
        **precision,
      )(jnp.zeros((1, length), jnp.int32))
    x = nn.LayerNorm(
      epsilon=cfg.layer_norm_eps, name="embed_norm", **precision
    )(x)
    if attention_mask is None:
      attention_mask = jnp.ones(token_ids.shape, bool)
    chex.assert_equal_shape([token_ids, attention_mask])
    mask = attention_mask.astype(bool)[:, None, None, :]
    for i in range(cfg.depth):
      x = BertLayer(
        cfg.num_heads,
        cfg.mlp_dim,
        cfg.layer_norm_eps,
        name=f"block_{i}",
        **precision,
      )(x, mask)
    return x
