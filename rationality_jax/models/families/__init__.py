"""The registry of model families (one module per family, see docs/models.md).

  family = models.family("blip")            # or models.family(module.config)
  family.normalization, family.lp_feature, family.flcp_temperature
  family.tokenizer(module.config)("a photo of a cat")

Adding a family (SigLIP, OpenCLIP, ...) is a new module here that defines
``FAMILY`` (`base.Family`, with its `base.Layout` s) and its name in `MODULES`
(`rationality_jax.registry`, the one registration style of every plug-in).
"""

from __future__ import annotations

from rationality_jax import registry
from rationality_jax.models.convert import CheckpointError
from rationality_jax.models.families.base import Family
from rationality_jax.models.families.base import Layout
from rationality_jax.models.tokenize import Tokenizer
from rationality_jax.models.vlm import VLMConfig

# The family modules, in the order their layouts are tried.
MODULES = ("clip", "albef", "blip")

FAMILIES: registry.Registry = registry.Registry(
  "model family", __name__, MODULES, "FAMILY"
)
LAYOUTS: dict[str, Layout] = {
  layout.name: layout
  for family in FAMILIES.values()
  for layout in family.layouts
}
ARCHITECTURES: dict[str, VLMConfig] = {
  name: config
  for family in FAMILIES.values()
  for name, config in family.architectures.items()
}
HUB_IDS: dict[str, Family] = {
  hub_id: family for family in FAMILIES.values() for hub_id in family.hub_ids
}


def _check_unique(kind: str, count: int, names: dict):
  if len(names) != count:
    raise ImportError(
      f"two families declare the same {kind}; names must be unique across "
      f"{sorted(FAMILIES)}."
    )


_check_unique("layout", sum(len(f.layouts) for f in FAMILIES.values()), LAYOUTS)
_check_unique(
  "architecture",
  sum(len(f.architectures) for f in FAMILIES.values()),
  ARCHITECTURES,
)
_check_unique("hub id", sum(len(f.hub_ids) for f in FAMILIES.values()), HUB_IDS)


def get(name_or_config: str | VLMConfig) -> Family:
  """The `Family` called ``name``, or that of a `VLMConfig` (``module.config``)."""
  return FAMILIES[getattr(name_or_config, "family", name_or_config)]


def tokenizer(family: str, context_length: int | None = None) -> Tokenizer:
  """The real tokenizer of ``family``, offline (see `Family.tokenizer`).

  ``tokenizer('clip')("a photo of a cat")[0][0, :7]`` is
  ``[49406, 320, 1125, 539, 320, 2368, 49407]``; ALBEF pads to 30, BLIP to 35.
  """
  return get(family).tokenizer(context_length=context_length)


def detect_layout(keys, source: str = "") -> Layout:
  """The one registered layout that claims these source keys."""
  keys = frozenset(keys)
  claims = [layout for layout in LAYOUTS.values() if layout.detect(keys)]
  if len(claims) == 1:
    return claims[0]
  where = f" of {source}" if source else ""
  if claims:
    raise CheckpointError(
      f"the keys{where} match several layouts "
      f"{[layout.name for layout in claims]}; their detect rules overlap."
    )
  expected = "; ".join(layout.description for layout in LAYOUTS.values())
  raise CheckpointError(
    f"unknown checkpoint layout{where}: expected one of: {expected}. Got keys "
    f"such as {sorted(keys)[:8]}."
  )
