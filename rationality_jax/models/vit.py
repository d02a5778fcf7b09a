"""One pre-LayerNorm Vision Transformer for CLIP, ALBEF and BLIP.

The same module serves OpenAI/HF CLIP (quick-GELU, ``ln_pre``, no patch bias,
LayerNorm eps 1e-5) and the timm-style ViT of ALBEF/BLIP (exact GELU, patch
bias, no ``ln_pre``, LayerNorm eps 1e-6); `ViTConfig` says which.

What explanations need (a contract with `rationality_jax.explain`):

* every transformer block is a submodule ``block_{i}`` (i = 0..depth-1) directly
  inside the tower, its attention submodule is ``attn``;
* the blocks named in ``VisionTransformer.sow_attention`` (none by default)
  materialise the post-softmax attention ``probs: [B, heads, N, N]`` float32
  (N = 1 + patches, CLS at index 0), then ``self.perturb('probs', probs)`` and
  ``self.sow('intermediates', 'probs', probs)`` before multiplying with V; every
  other block runs `dot_product_attention`, which never exposes (and on
  GPU/TPU need not materialise) the probabilities;
* every block perturbs and sows its first LayerNorm output ``norm1: [B, N, D]``
  and its output tokens ``tokens: [B, N, D]``;
* with ``VisionTransformer.cls_only`` the last block keeps only the CLS
  query: its ``probs`` are [B, heads, 1, N] (the CLS row of the full map),
  its ``tokens`` [B, 1, D] (its ``norm1`` stays [B, N, D]).

So with ``VisionTransformer(config, sow_attention=(3,))``,
``perturbations['block_3']['attn']['probs']`` is the attention of block 3;
``jax.grad`` with respect to the ``perturbations`` collection gives every
sown layer's gradient in one pass. `rationality_jax.explain` asks for exactly
the blocks its method reads.

Precision (``dtype``: compute, ``param_dtype``: stored parameters; float32,
bfloat16 or float16): matmuls run in ``dtype``, the attention logits and the
softmax in float32 (the logits accumulate in float32), LayerNorm statistics in
float32 (flax's ``force_float32_reductions``); parameters are cast to
``dtype`` where they are used.
"""

from __future__ import annotations

from collections.abc import Callable
import dataclasses

import chex
import flax.linen as nn
import jax
import jax.numpy as jnp


def quick_gelu(x: jax.Array) -> jax.Array:
  """OpenAI CLIP's GELU approximation ``x * sigmoid(1.702 x)``."""
  return x * jax.nn.sigmoid(1.702 * x)


def exact_gelu(x: jax.Array) -> jax.Array:
  """GELU with the erf (PyTorch ``nn.GELU()``/BERT ``gelu``), not the tanh form."""
  return jax.nn.gelu(x, approximate=False)


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
  "quick_gelu": quick_gelu,
  "gelu": exact_gelu,
}


@dataclasses.dataclass(frozen=True)
class ViTConfig:
  """Shape and flavour of a ViT image tower.

  Attributes:
    image_size: side of the square input in pixels; the patch grid is
      ``image_size // patch_size`` per side (`grid_size`).
    patch_size: side of a square patch in pixels.
    width: token dimension D.
    depth: number of transformer blocks.
    num_heads: attention heads; ``width % num_heads == 0``.
    mlp_dim: hidden size of the block MLP.
    activation: ``'quick_gelu'`` (CLIP) or ``'gelu'`` (timm, exact erf GELU).
    layer_norm_eps: epsilon of every LayerNorm (CLIP 1e-5, timm 1e-6).
    patch_bias: whether the patch embedding has a bias (timm yes, CLIP no).
    pre_norm: whether a LayerNorm follows the embeddings (CLIP's ``ln_pre``).
  """

  image_size: int = 224
  patch_size: int = 16
  width: int = 768
  depth: int = 12
  num_heads: int = 12
  mlp_dim: int = 3072
  activation: str = "quick_gelu"
  layer_norm_eps: float = 1e-5
  patch_bias: bool = False
  pre_norm: bool = True

  def __post_init__(self):
    if self.image_size % self.patch_size:
      raise ValueError(
        f"image_size {self.image_size} is not a multiple of patch_size "
        f"{self.patch_size}; choose an image size divisible by the patch."
      )
    if self.num_heads < 1 or self.width % self.num_heads:
      raise ValueError(
        f"width {self.width} is not divisible by num_heads {self.num_heads}."
      )
    if self.activation not in ACTIVATIONS:
      raise ValueError(
        f"activation {self.activation!r} is not one of {sorted(ACTIVATIONS)}."
      )

  @property
  def grid_size(self) -> int:
    """Patches per side of the image."""
    return self.image_size // self.patch_size

  @property
  def num_tokens(self) -> int:
    """Tokens per image: CLS + grid_size**2 patches."""
    return 1 + self.grid_size**2


def attention_probs(
  query: jax.Array, key: jax.Array, mask: jax.Array | None = None
) -> jax.Array:
  """softmax(q k^T / sqrt(d)) in float32: [B, H, N, d] (both) -> [B, H, N, M].

  The logits accumulate in float32 whatever the inputs' dtype. mask: bool,
  broadcastable to [B, H, N, M]; True = may attend.
  """
  scale = jnp.asarray(query.shape[-1] ** -0.5, query.dtype)
  scores = jnp.einsum(
    "bhqd,bhkd->bhqk",
    query * scale,
    key,
    preferred_element_type=jnp.float32,
  )
  if mask is not None:
    scores = jnp.where(mask, scores, jnp.finfo(jnp.float32).min)
  return jax.nn.softmax(scores, axis=-1)


def dot_product_attention(
  query: jax.Array,
  key: jax.Array,
  value: jax.Array,
  mask: jax.Array | None = None,
) -> jax.Array:
  """softmax(q k^T / sqrt(d)) v without exposing the probabilities.

  Args:
    query, key, value: [B, H, N, d] head-major, in the compute dtype.
    mask: optional bool, broadcastable to [B, H, N, N]; True = may attend.

  Returns:
    [B, H, N, d] in the dtype of `value`.

  On GPU/TPU this is `jax.nn.dot_product_attention` (``implementation=None``:
  XLA's choice; jax 0.10.2 lowers it to XLA's own einsum + softmax, which the
  compiler fuses; cuDNN's flash kernel is only taken with
  ``implementation='cudnn'`` and float16/bfloat16). On CPU, whose XLA has no
  fused attention, the same arithmetic in the head-major layout, which XLA CPU
  runs faster than `jax.nn.dot_product_attention`'s token-major einsums (see
  docs/benchmarks.md).
  """
  if jax.default_backend() == "cpu":
    probs = attention_probs(query, key, mask).astype(value.dtype)
    return jnp.einsum("bhqk,bhkd->bhqd", probs, value)
  token_major = (t.transpose(0, 2, 1, 3) for t in (query, key, value))
  if mask is not None:
    mask = jnp.broadcast_to(
      mask, (mask.shape[0], 1, query.shape[2], key.shape[2])
    )
  out = jax.nn.dot_product_attention(*token_major, mask=mask)
  return out.transpose(0, 2, 1, 3)


class Attention(nn.Module):
  """Multi-head self-attention with a fused qkv projection.

  Attributes:
    num_heads: number of heads H.
    dtype: compute dtype; the logits and the softmax run in float32.
    param_dtype: dtype of the parameters.
    sow_weights: materialise the probabilities, perturb and sow them as
      ``probs`` (for explanations); False: `dot_product_attention`.
  """

  num_heads: int
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  sow_weights: bool = False
  cls_only: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """Attend.

    Args:
      x: [B, N, D] tokens.
      mask: optional bool, broadcastable to [B, H, N, N] ([B, H, 1, N] with
        `cls_only`); True = may attend.

    Returns:
      [B, N, D], or [B, 1, D] with `cls_only` (only the first token queries;
      every token is still a key and a value). With `sow_weights`, sows and
      perturbs ``probs: [B, H, N, N]`` (``[B, H, 1, N]``) float32.
    """
    batch, tokens, width = x.shape
    head_dim = width // self.num_heads
    qkv = nn.Dense(
      3 * width, dtype=self.dtype, param_dtype=self.param_dtype, name="qkv"
    )(x)
    # [3, B, H, N, head_dim]: batch dims leading, so that XLA's batched dots
    # need no relayout (faster on CPU than 'bqhd,bkhd->bhqk'; docs/benchmarks.md).
    qkv = qkv.reshape(batch, tokens, 3, self.num_heads, head_dim).transpose(
      2, 0, 3, 1, 4
    )
    query, key, value = qkv[0], qkv[1], qkv[2]
    if self.cls_only:
      query = query[:, :, :1]
    if self.sow_weights:
      probs = self.perturb("probs", attention_probs(query, key, mask))
      self.sow("intermediates", "probs", probs)
      out = jnp.einsum("bhqk,bhkd->bhqd", probs.astype(self.dtype), value)
    else:
      out = dot_product_attention(query, key, value, mask)
    out = out.transpose(0, 2, 1, 3).reshape(batch, query.shape[2], width)
    return nn.Dense(
      width, dtype=self.dtype, param_dtype=self.param_dtype, name="out"
    )(out)


class MLP(nn.Module):
  """Two dense layers with an activation between them (``fc1``, ``fc2``)."""

  hidden_dim: int
  activation: str
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    """[B, N, D] -> [B, N, D]."""
    width = x.shape[-1]
    x = nn.Dense(
      self.hidden_dim,
      dtype=self.dtype,
      param_dtype=self.param_dtype,
      name="fc1",
    )(x)
    x = ACTIVATIONS[self.activation](x)
    return nn.Dense(
      width, dtype=self.dtype, param_dtype=self.param_dtype, name="fc2"
    )(x)


class Block(nn.Module):
  """Pre-LayerNorm block: x + attn(layer_norm1(x)), then x + mlp(layer_norm2(x)).

  Used by the image tower and by CLIP's (causal) text tower. The output of
  ``layer_norm1`` is perturbed/sown as ``norm1``, the block output as
  ``tokens``; the attention probabilities only with `sow_weights`. With
  `cls_only` only the first (CLS) token leaves the block: it alone queries the
  attention (all tokens are keys and values) and goes through the MLP, and
  the output is [B, 1, D]: the same CLS row as without it, for a fraction of
  the work after the attention.
  """

  num_heads: int
  mlp_dim: int
  activation: str
  layer_norm_eps: float
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  sow_weights: bool = False
  cls_only: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, mask: jax.Array | None = None) -> jax.Array:
    """[B, N, D] tokens (optional mask: see `Attention`) -> [B, N, D].

    [B, 1, D] with `cls_only`.
    """
    precision = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    y = nn.LayerNorm(
      epsilon=self.layer_norm_eps, name="layer_norm1", **precision
    )(x)
    y = self.perturb("norm1", y)
    self.sow("intermediates", "norm1", y)
    attended = Attention(
      self.num_heads,
      sow_weights=self.sow_weights,
      cls_only=self.cls_only,
      name="attn",
      **precision,
    )(y, mask)
    x = (x[:, :1] if self.cls_only else x) + attended
    y = nn.LayerNorm(
      epsilon=self.layer_norm_eps, name="layer_norm2", **precision
    )(x)
    x = x + MLP(self.mlp_dim, self.activation, name="mlp", **precision)(y)
    x = self.perturb("tokens", x)
    self.sow("intermediates", "tokens", x)
    return x


class PatchEmbedding(nn.Module):
  """Non-overlapping patch projection, the same as a stride-p p x p convolution.

  Params: ``kernel: [p, p, C, D]`` (the conv's HWIO layout), ``bias: [D]``
  when `use_bias`. Computed as reshape + one matmul.
  """

  patch_size: int
  width: int
  use_bias: bool
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    """[B, H, W, C] -> [B, (H/p)*(W/p), D], patches in row-major order."""
    batch, height, width, channels = images.shape
    p = self.patch_size
    kernel = self.param(
      "kernel",
      nn.initializers.lecun_normal(),
      (p, p, channels, self.width),
      self.param_dtype,
    )
    patches = images.reshape(batch, height // p, p, width // p, p, channels)
    tokens = jnp.einsum(
      "bhpwqc,pqcd->bhwd", patches.astype(self.dtype), kernel.astype(self.dtype)
    )
    if self.use_bias:
      bias = self.param(
        "bias", nn.initializers.zeros, (self.width,), self.param_dtype
      )
      tokens = tokens + bias.astype(self.dtype)
    return tokens.reshape(batch, -1, self.width)


class VisionTransformer(nn.Module):
  """The image tower: patches + CLS + positions -> blocks -> final LayerNorm.

  Params: ``patch_embed``, ``cls_token: [D]``, ``pos_embedding: [N, D]``,
  ``pre_norm`` (if `ViTConfig.pre_norm`), ``block_0`` .. ``block_{L-1}``,
  ``final_norm`` (CLIP's ``ln_post``, timm's ``norm``).

  Attributes:
    config: `ViTConfig`.
    dtype: compute dtype (float32, bfloat16 or float16).
    param_dtype: dtype of the parameters it creates (`init`).
    sow_attention: blocks (0..depth-1) that materialise, perturb and sow their
      attention probabilities (see the module docstring); the others run the
      fused `dot_product_attention`. Empty by default (training, accuracy).
    cls_only: the last block computes the CLS token only (`Block.cls_only`),
      and the tower returns [B, 1, D]: exact for every reader of
      ``tokens[:, 0]`` (the image embedding, the linear probes, Chefer and
      rollout, which read the last block's CLS query row). It saves the last
      block's output projection and MLP on all but one token, forward and
      backward: 6 % of a ViT-B/16 forward or all-blocks heatmap, 11 % of a
      last-block heatmap. False by default (all tokens);
      `VisionLanguageModel` sets it.
  """

  config: ViTConfig
  dtype: jnp.dtype = jnp.float32
  param_dtype: jnp.dtype = jnp.float32
  sow_attention: tuple[int, ...] = ()
  cls_only: bool = False

  @nn.compact
  def __call__(self, images: jax.Array) -> jax.Array:
    """Encode images.

    Args:
      images: [B, S, S, 3] float, already normalized, S = config.image_size.

    Returns:
      tokens: [B, N, D] after the final LayerNorm; ``tokens[:, 0]`` is the CLS
      output (the input of the projection), ``tokens[:, 1:]`` the patches in
      row-major grid order. [B, 1, D] (the CLS output) with `cls_only`.
    """
    cfg = self.config
    chex.assert_rank(images, 4)
    chex.assert_axis_dimension(images, 1, cfg.image_size)
    chex.assert_axis_dimension(images, 2, cfg.image_size)
    chex.assert_axis_dimension(images, 3, 3)
    outside = sorted(set(self.sow_attention) - set(range(cfg.depth)))
    if outside:
      raise ValueError(
        f"sow_attention names blocks {outside}, but the tower has blocks "
        f"0..{cfg.depth - 1}; pass indices in that range."
      )
    precision = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    batch = images.shape[0]
    x = PatchEmbedding(
      cfg.patch_size, cfg.width, cfg.patch_bias, name="patch_embed", **precision
    )(images)
    cls_token = self.param(
      "cls_token", nn.initializers.normal(0.02), (cfg.width,), self.param_dtype
    )
    pos_embedding = self.param(
      "pos_embedding",
      nn.initializers.normal(0.02),
      (cfg.num_tokens, cfg.width),
      self.param_dtype,
    )
    cls_tokens = jnp.broadcast_to(
      cls_token.astype(self.dtype), (batch, 1, cfg.width)
    )
    x = jnp.concatenate([cls_tokens, x], axis=1) + pos_embedding.astype(
      self.dtype
    )
    if cfg.pre_norm:
      x = nn.LayerNorm(
        epsilon=cfg.layer_norm_eps, name="pre_norm", **precision
      )(x)
    for i in range(cfg.depth):
      x = Block(
        cfg.num_heads,
        cfg.mlp_dim,
        cfg.activation,
        cfg.layer_norm_eps,
        sow_weights=i in self.sow_attention,
        cls_only=self.cls_only and i == cfg.depth - 1,
        name=f"block_{i}",
        **precision,
      )(x)
    return nn.LayerNorm(
      epsilon=cfg.layer_norm_eps, name="final_norm", **precision
    )(x)
