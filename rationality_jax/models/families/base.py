"""What a model family declares: its checkpoint layouts and its defaults.

A family module (``families/<name>.py``) builds one `Family` called
``FAMILY``; the registry (``families/__init__.py``) lists the modules. Nothing
outside the family modules branches on a family's or a layout's name: the
loader asks the layouts, the methods ask the family.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import dataclasses
from typing import Any

import numpy as np

from rationality_jax.models.convert import Converter
from rationality_jax.models.tokenize import Tokenizer
from rationality_jax.models.vlm import VLMConfig

LP_FEATURES = ("embedding", "cls")


@dataclasses.dataclass(frozen=True)
class Layout:
  """One way a family's weights are stored on disk.

  Attributes:
    name: e.g. ``'openai_clip'``, ``'hf_blip_retrieval'``.
    family: name of the `Family` whose checkpoints use it.
    description: what it is and its telltale key, for error messages.
    detect: set of source keys -> whether they are in this layout. Exactly
      one registered layout may claim a state dict.
    config: (state, hf_config) -> `VLMConfig`. ``hf_config`` holds the
      ``config.json`` fields named by `hf_config_fields` as attribute
      namespaces (``hf_config.vision_config.image_size``); None for file
      layouts, whose config comes from the shapes.
    convert: (converter, config, temp) -> None: fills the params with
      `Converter.copy`, ``linear``, ... and the block converters of
      `rationality_jax.models.convert`; may add ignore patterns that depend
      on the checkpoint (ALBEF's fusion layers).
    ignored: regexes of source keys the ITC path does not use (momentum
      encoders, queues, heads); any other unused key is an error.
    hf_config_fields: dotted ``config.json`` fields `config` reads
      (``'vision_config.image_size'``); None: a single-file layout, whose
      config comes from the shapes.
    stores_temperature: False when the checkpoint has no temperature and
      ``load(..., temp=)`` gives it (HF BLIP retrieval); else ``temp=`` is an
      error.
  """

  name: str
  family: str
  description: str
  detect: Callable[[frozenset[str]], bool] = dataclasses.field(repr=False)
  config: Callable[[Mapping[str, np.ndarray], Any], VLMConfig] = (
    dataclasses.field(repr=False)
  )
  convert: Callable[[Converter, VLMConfig, float | None], None] = (
    dataclasses.field(repr=False)
  )
  ignored: tuple[str, ...] = ()
  hf_config_fields: tuple[str, ...] | None = None
  stores_temperature: bool = True


@dataclasses.dataclass(frozen=True, eq=False)
class Family:
  """A model family as a plug-in.

  Attributes:
    name: ``VLMConfig.family`` of its models (``'clip'``).
    normalization: default pixel normalization, a key of
      `rationality_jax.data.preprocess.NORMALIZATION` (what the family was
      trained with: ``'clip'`` for CLIP, ALBEF and BLIP).
    lp_feature: the linear probe's feature: ``'embedding'`` (the projected
      image embedding) or ``'cls'`` (the image tower's CLS token).
    flcp_temperature: FLCP's default: > 0 a fixed temperature (CLIP 0.07, as
      the study's release); 0 the model's own learnable one (ALBEF, BLIP).
    context_length: tokenizer positions when the model does not say
      (CLIP 77, ALBEF 30, BLIP 35: their retrieval evaluation).
    context_from_model: whether a model's own text positions
      (``config.text.context_length``) set the length instead (CLIP).
    build_tokenizer: context length -> `Tokenizer` (cached by the callee).
    layouts: the checkpoint layouts of the family.
    hub_ids: Hugging Face hub names `models.load` accepts for it.
    architectures: ``random:<arch>`` name -> `VLMConfig` of a random init.
  """

  name: str
  normalization: str
  lp_feature: str
  flcp_temperature: float
  context_length: int
  context_from_model: bool
  build_tokenizer: Callable[[int], Tokenizer] = dataclasses.field(repr=False)
  layouts: tuple[Layout, ...] = dataclasses.field(repr=False)
  hub_ids: tuple[str, ...] = ()
  architectures: Mapping[str, VLMConfig] = dataclasses.field(
    default_factory=dict, repr=False
  )

  def __post_init__(self):
    if self.lp_feature not in LP_FEATURES:
      raise ValueError(
        f"family {self.name!r}: lp_feature {self.lp_feature!r} is not one "
        f"of {LP_FEATURES}."
      )
    if self.flcp_temperature < 0:
      raise ValueError(
        f"family {self.name!r}: flcp_temperature must be > 0 (fixed) or 0 "
        f"(learnable), got {self.flcp_temperature}."
      )
    strangers = [x.name for x in self.layouts if x.family != self.name]
    if strangers:
      raise ValueError(
        f"family {self.name!r} lists layouts of another family: {strangers}."
      )

  def tokenizer(
    self, config: VLMConfig | None = None, context_length: int | None = None
  ) -> Tokenizer:
    """The family's tokenizer for ``config``'s text tower.

    Args:
      config: the model; CLIP takes its ``text.context_length``, ALBEF and
        BLIP their fixed retrieval length.
      context_length: overrides both.
    """
    if context_length is None:
      context_length = (
        config.text.context_length
        if self.context_from_model and config is not None
        else self.context_length
      )
    return self.build_tokenizer(context_length)
