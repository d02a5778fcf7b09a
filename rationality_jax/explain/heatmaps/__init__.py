"""The heatmaps (explanation methods): one module each, options and arithmetic.

Each module declares ``HEATMAP``, a frozen dataclass whose fields are the
heatmap's options with their defaults and whose ``name`` is its config name;
`HEATMAPS` finds them by name (`rationality_jax.registry`, the one registration
style of every plug-in):

  HEATMAPS["chefer"](start_layer=-1)     # == Chefer(start_layer=-1)
  sorted(HEATMAPS)                       # every registered name

Token heatmaps (`chefer`, `rollout`, `gradcam`) read what the image tower sows
at some of its sites (`base`); pixel heatmaps (`input_gradients`,
`gradient_x_input`, `integrated_gradients`) differentiate the images; `random`
(seeded noise, a control) only runs the model forward. Adding one is its
module here plus its name in `MODULES`.
"""

from __future__ import annotations

from rationality_jax import registry

MODULES = (
  "chefer",
  "rollout",
  "gradcam",
  "input_gradients",
  "gradient_x_input",
  "integrated_gradients",
  "random",
)

HEATMAPS: registry.Registry = registry.Registry(
  "heatmap", __name__, MODULES, "HEATMAP"
)
