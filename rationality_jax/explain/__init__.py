"""Explanation heatmaps: jit-compiled, batched, exact (see docs/explain.md).

Build one function per (model, heatmap) with `make_explainer`; it returns the
logits, the heatmap (pixels, [0, 1]), the raw patch map and the RMA of a whole
batch from one forward and one backward pass.

Heatmaps (`HEATMAPS`, one module each in `heatmaps/`): Chefer
(gradient-weighted attention relevance, the study's), GradCAM (on ViT tokens),
Rollout (Abnar & Zuidema), InputGradients, GradientXInput, IntegratedGradients,
Random (seeded noise, a control);
``HEATMAPS[name](**options)`` builds one from its config name. Heads and
scores: `targets`. Post-processing: `postprocess`. Faithfulness (deletion and
insertion curves, RISE's baselines or ROAD's noisy linear imputation,
`imputation`): `faithfulness.make_perturbation_curve`. Sanity
(Adebayo et al.'s cascading randomisation): `randomization`.
"""

from rationality_jax.explain import faithfulness
from rationality_jax.explain import imputation
from rationality_jax.explain import postprocess
from rationality_jax.explain import randomization
from rationality_jax.explain import targets
from rationality_jax.explain.explainer import make_explainer
from rationality_jax.explain.explainer import study_method
from rationality_jax.explain.faithfulness import make_perturbation_curve
from rationality_jax.explain.heatmaps import HEATMAPS
from rationality_jax.explain.heatmaps.chefer import Chefer
from rationality_jax.explain.heatmaps.chefer import chefer_relevance
from rationality_jax.explain.heatmaps.gradcam import GradCAM
from rationality_jax.explain.heatmaps.gradcam import grad_cam_tokens
from rationality_jax.explain.heatmaps.gradient_x_input import GradientXInput
from rationality_jax.explain.heatmaps.gradient_x_input import (
  gradient_x_input_map,
)
from rationality_jax.explain.heatmaps.input_gradients import InputGradients
from rationality_jax.explain.heatmaps.input_gradients import input_gradient_map
from rationality_jax.explain.heatmaps.integrated_gradients import (
  IntegratedGradients,
)
from rationality_jax.explain.heatmaps.integrated_gradients import black_baseline
from rationality_jax.explain.heatmaps.integrated_gradients import (
  integrated_gradients_map,
)
from rationality_jax.explain.heatmaps.integrated_gradients import (
  integration_points,
)
from rationality_jax.explain.heatmaps.random import Random
from rationality_jax.explain.heatmaps.random import noise_maps
from rationality_jax.explain.heatmaps.rollout import Rollout
from rationality_jax.explain.heatmaps.rollout import attention_rollout
from rationality_jax.explain.postprocess import minmax_normalize
from rationality_jax.explain.postprocess import upsample
from rationality_jax.explain.randomization import cascading_randomization

__all__ = [
  "HEATMAPS",
  "Chefer",
  "GradCAM",
  "GradientXInput",
  "InputGradients",
  "IntegratedGradients",
  "Random",
  "Rollout",
  "attention_rollout",
  "black_baseline",
  "cascading_randomization",
  "chefer_relevance",
  "faithfulness",
  "grad_cam_tokens",
  "gradient_x_input_map",
  "imputation",
  "input_gradient_map",
  "integrated_gradients_map",
  "integration_points",
  "make_explainer",
  "make_perturbation_curve",
  "minmax_normalize",
  "noise_maps",
  "postprocess",
  "randomization",
  "study_method",
  "targets",
  "upsample",
]
