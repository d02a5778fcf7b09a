"""Strict checkpoint conversion: the machinery every family's layouts share.

A *layout* (`rationality_jax.models.families.Layout`) is one way a family's
weights are stored (OpenAI's CLIP, HF ``CLIPModel``, ALBEF's ``.pth``, ...);
its family module says how to detect it, how to read its config and which
source key fills which param. What they share lives here:

* `Converter`: fills the params tree of `VisionLanguageModel(config)` from a
  source state dict, keeping the source's key names, and says what was wrong;
* source name tables and block converters of the libraries the families were
  written with: `ViTNames` (`TIMM_VIT`, `HF_CLIP_VIT`), `convert_vit`,
  `convert_pre_ln_blocks`, `convert_bert`, `convert_clip_text`;
* `expected_params` and `convert_state_dict`.

The configs a checkpoint implies (from shapes or HF ``config.json`` fields)
are read in `rationality_jax.models.source_configs`.

Strictness: every source key is either converted or matches one of the
layout's ignore patterns (momentum copies, queues, heads and layers the ITC
path does not use); every model leaf is filled; shapes must agree; every
converted tensor is finite. Violations raise `CheckpointError` naming the
key(s), the file and both shapes.
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

from rationality_jax.models.positions import resize_position_embedding
from rationality_jax.models.text import BertConfig
from rationality_jax.models.text import CLIPTextConfig
from rationality_jax.models.vit import ViTConfig
from rationality_jax.models.vlm import VisionLanguageModel
from rationality_jax.models.vlm import VLMConfig


class CheckpointError(ValueError):
  """A checkpoint that cannot be converted exactly (says which key and why)."""


# ----------------------------------------------------------------------------
# The strict converter.
# ----------------------------------------------------------------------------


class Converter:
  """Fills a params tree from source keys, tracking what was used.

  Attributes:
    state: source key -> array.
    source: the file or directory the state came from (for messages).
    expected: flattened ``'a/b/c'`` -> abstract leaf of the target params.
    params: flattened target -> converted float32 array.
  """

  def __init__(
    self, state: Mapping[str, np.ndarray], expected: Mapping, source: str = ""
  ):
    self.state = state
    self.source = source
    self.expected = flax.traverse_util.flatten_dict(expected, sep="/")
    self.params: dict[str, np.ndarray] = {}
    self._used: set[str] = set()
    self._ignored: list[str] = []

  @property
  def _in_source(self) -> str:
    return f" in {self.source}" if self.source else ""

  def ignore(self, *patterns: str) -> None:
    """Source keys matching any of these regexes are unused on purpose."""
    self._ignored.extend(patterns)

  def take(self, key: str) -> np.ndarray:
    """The source tensor ``key`` as float32; it must exist and be finite."""
    if key not in self.state:
      raise CheckpointError(
        f"missing key {key!r} in the checkpoint{self._in_source}."
      )
    self._used.add(key)
    value = np.asarray(self.state[key], np.float32)
    finite = np.isfinite(value)
    if not finite.all():
      raise CheckpointError(
        f"{key!r}{self._in_source} holds {value.size - finite.sum()} "
        f"non-finite value(s) (NaN or inf) among {value.size}: the checkpoint "
        "is corrupt or comes from a diverged run; refusing to load it."
      )
    return value

  def put(self, target: str, value: np.ndarray, sources: str | Iterable[str]):
    """Set the target leaf ``target`` (``'vision/cls_token'``) to ``value``."""
    if target not in self.expected:
      raise CheckpointError(f"internal: model has no param {target!r}.")
    want = tuple(self.expected[target].shape)
    if value.shape != want:
      sources = [sources] if isinstance(sources, str) else list(sources)
      got = ", ".join(f"{s!r} {tuple(self.state[s].shape)}" for s in sources)
      raise CheckpointError(
        f"shape mismatch for {got}{self._in_source}: converted to "
        f"{tuple(value.shape)}, but the model's {target!r} expects {want}."
      )
    self.params[target] = value

  def copy(self, target: str, key: str, transpose: bool = False):
    value = self.take(key)
    self.put(target, value.T if transpose else value, key)

  def scalar(self, target: str, key: str):
    """A 0-d param from a source tensor of one element (``logit_scale``)."""
    self.put(target, self.take(key).reshape(()), key)

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

  def finish(self) -> dict:
    """The params tree; raises if a source key is unused or a leaf unfilled."""
    unused = sorted(
      k
      for k in self.state
      if k not in self._used and not any(re.search(p, k) for p in self._ignored)
    )
    if unused:
      shown = ", ".join(
        f"{k!r} {tuple(self.state[k].shape)}" for k in unused[:10]
      )
      raise CheckpointError(
        f"{len(unused)} unexpected key(s) in the checkpoint{self._in_source}, "
        f"neither converted nor ignored on purpose: {shown}"
        f"{' ...' if len(unused) > 10 else ''}."
      )
    missing = sorted(set(self.expected) - set(self.params))
    if missing:
      raise CheckpointError(
        f"model params not filled by the checkpoint{self._in_source}: "
        f"{missing}."
      )
    # One device_put of the whole tree: no per-leaf eager op dispatch.
    return flax.traverse_util.unflatten_dict(
      jax.device_put(
        {k: np.asarray(v, order="C") for k, v in self.params.items()}
      ),
      sep="/",
    )


# ----------------------------------------------------------------------------
# Block converters, keyed by the source library's names.
# ----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ViTNames:
  """Source names of one pre-LN transformer tower (relative to its prefix).

  Linear layers and norms are given by prefix (``.weight``/``.bias`` are
  appended); the qkv projection by the lists of weight and bias keys that are
  stacked into one fused Dense. ``block`` is formatted with ``i``.
  """

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


# timm's VisionTransformer (ALBEF's and BLIP's models/vit.py keep its names).
TIMM_VIT = ViTNames(
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
# transformers' CLIPVisionTransformer; HF CLIP's text tower and HF BLIP's
# vision tower use the same encoder names.
HF_CLIP_VIT = ViTNames(
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


def convert_vit(c: Converter, names: ViTNames, prefix: str, cfg: ViTConfig):
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
  convert_pre_ln_blocks(c, t, prefix, names, cfg.depth)
  c.norm(t + "final_norm", prefix + names.final_norm)


def convert_pre_ln_blocks(
  c: Converter, t: str, prefix: str, names: ViTNames, depth: int
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


def convert_clip_text(
  c: Converter,
  names: ViTNames,
  prefix: str,
  embeddings: tuple[str, str],
  final_norm: str,
  cfg: CLIPTextConfig,
):
  """CLIP's causal text tower.

  Args:
    c: the converter.
    names: block names (``block``, ``norm1``, ...; the image fields unused).
    prefix: of the blocks (``''`` for OpenAI, ``'text_model.'`` for HF).
    embeddings: source keys of the token and the position embedding.
    final_norm: source prefix of the final LayerNorm.
    cfg: the text tower.
  """
  token, position = embeddings
  c.copy("text/token_embedding/embedding", token)
  c.copy("text/pos_embedding", position)
  convert_pre_ln_blocks(c, "text/", prefix, names, cfg.depth)
  c.norm("text/final_norm", final_norm)


def convert_bert(c: Converter, prefix: str, cfg: BertConfig):
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


# ALBEF/BLIP training state in their .pth checkpoints, unused by the encoders.
MOMENTUM_AND_QUEUES = (
  r"^[a-z_]+_m\.",  # momentum encoders: visual_encoder_m, text_encoder_m, ...
  r"^(image_queue|text_queue|idx_queue|queue_ptr|ptr_queue)$",
)


def convert_itc_projections(c: Converter):
  """ALBEF/BLIP's ``vision_proj``, ``text_proj`` (with biases) and ``temp``."""
  c.linear("vision_proj", "vision_proj.weight", "vision_proj.bias")
  c.linear("text_proj", "text_proj.weight", "text_proj.bias")
  c.scalar("temp", "temp")


# ----------------------------------------------------------------------------
# Entry points.
# ----------------------------------------------------------------------------


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
  layout,
  config: VLMConfig,
  temp: float | None = None,
  source: str = "",
) -> dict:
  """Source state dict -> params tree of `VisionLanguageModel(config)`.

  Args:
    state: source key -> array (float16/32/64, bfloat16; made float32).
    layout: the `families.Layout` the keys are in (`families.detect_layout`).
    config: the target model; ``config.vision.image_size`` may differ from the
      checkpoint's, the position embeddings are then resized (bicubic).
    temp: temperature for layouts that store none (HF BLIP retrieval).
    source: the file or directory, named in error messages.

  Returns:
    The ``'params'`` collection (nested dict of float32 jax arrays).

  Raises:
    CheckpointError: missing / unexpected key, shape mismatch, unfilled
      param, NaN or inf in a converted tensor.
  """
  c = Converter(state, expected_params(config), source)
  c.ignore(*layout.ignored)
  layout.convert(c, config, temp)
  return c.finish()
