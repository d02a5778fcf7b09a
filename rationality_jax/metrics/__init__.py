"""Rationality metrics: pure, vectorised functions of arrays.

Per-sample localisation scores ([..., H, W] heatmaps and masks of one shape ->
[...]):
  rma, relevance_rank_accuracy, pointing_game, iou; evidence_columns (RMA and
  what makes a sample degenerate, for the Accumulator)
Rationality of a set of predictions:
  valid_evidence, rationality_counts -> Counts (RR, RW, WR, WW, undefined),
  prediction_trustworthiness (PT), inference_reliability (IR), accuracy
Chance levels (a uniform map's RMA is the mask's share of the image):
  uniform_map_rma, uniform_map_rma_from_areas, uniform_map_baseline
Similarity of two maps of one image (the randomisation sanity check):
  spearman, ssim
Uncertainty (percentile bootstrap over samples, one method or a paired
difference of two):
  bootstrap_intervals, paired_bootstrap
Streaming evaluation that can be re-summarised at any threshold, under either
degenerate-case policy:
  Accumulator

All of them work under jax.jit, jax.vmap, jax.grad (where differentiable) and on
sharded global arrays. Degenerate cases (empty mask, zero heatmap, non-finite
heatmap or logits) are defined in each docstring, with two policies: ours
("undefined": such a sample is counted apart, by reason) and the authors'
release ("release": its arithmetic, no special case).
"""

from rationality_jax.metrics.accumulator import REASONS
from rationality_jax.metrics.accumulator import Accumulator
from rationality_jax.metrics.baselines import uniform_map_baseline
from rationality_jax.metrics.baselines import uniform_map_rma
from rationality_jax.metrics.baselines import uniform_map_rma_from_areas
from rationality_jax.metrics.bootstrap import bootstrap_intervals
from rationality_jax.metrics.bootstrap import paired_bootstrap
from rationality_jax.metrics.localisation import POLICIES
from rationality_jax.metrics.localisation import evidence_columns
from rationality_jax.metrics.localisation import iou
from rationality_jax.metrics.localisation import pointing_game
from rationality_jax.metrics.localisation import relevance_rank_accuracy
from rationality_jax.metrics.localisation import rma
from rationality_jax.metrics.rationality import Counts
from rationality_jax.metrics.rationality import accuracy
from rationality_jax.metrics.rationality import inference_reliability
from rationality_jax.metrics.rationality import prediction_trustworthiness
from rationality_jax.metrics.rationality import rationality_counts
from rationality_jax.metrics.rationality import valid_evidence
from rationality_jax.metrics.similarity import spearman
from rationality_jax.metrics.similarity import ssim

__all__ = [
  "POLICIES",
  "REASONS",
  "Accumulator",
  "Counts",
  "accuracy",
  "bootstrap_intervals",
  "evidence_columns",
  "inference_reliability",
  "iou",
  "paired_bootstrap",
  "pointing_game",
  "prediction_trustworthiness",
  "rationality_counts",
  "relevance_rank_accuracy",
  "rma",
  "spearman",
  "ssim",
  "uniform_map_baseline",
  "uniform_map_rma",
  "uniform_map_rma_from_areas",
  "valid_evidence",
]
