"""Rationality metrics: pure, vectorised functions of arrays.

Per-sample localisation scores ([..., H, W] heatmaps and masks -> [...]):
  rma, relevance_rank_accuracy, pointing_game, iou
Rationality of a set of predictions:
  valid_evidence, rationality_counts -> Counts (RR, RW, WR, WW, undefined),
  prediction_trustworthiness (PT), inference_reliability (IR), accuracy
Streaming evaluation that can be re-summarised at any threshold:
  Accumulator

All of them work under jax.jit, jax.vmap, jax.grad (where differentiable) and on
sharded global arrays. Degenerate cases (empty mask, zero heatmap, NaN) are
defined in each docstring.
"""

from rationality_jax.metrics.accumulator import Accumulator
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

__all__ = [
  "Accumulator",
  "Counts",
  "accuracy",
  "inference_reliability",
  "iou",
  "pointing_game",
  "prediction_trustworthiness",
  "rationality_counts",
  "relevance_rank_accuracy",
  "rma",
  "valid_evidence",
]
