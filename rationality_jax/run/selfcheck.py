"""`mode = "selfcheck"`: the metrics on a generated problem with a known answer.

Each sample gets a random mask (a rectangle) and a heatmap that puts exactly a
chosen fraction `target_rma` of its mass on the mask, so its RMA is known before
anything runs. The jitted JAX metrics must reproduce those values and the
counts, PT, IR and accuracy computed in plain numpy. Useful as a smoke test of
an installation (CPU, GPU or TPU) and as a template for calling the metrics.
"""

from __future__ import annotations

import json
import os

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np

from rationality_jax import files
from rationality_jax import metrics

RESULT = "selfcheck.json"


def make_problem(seed: int, num_samples: int, size: int):
  """Heatmaps [N, S, S] with known RMA against rectangle masks [N, S, S]."""
  rng = np.random.default_rng(seed)
  masks = np.zeros((num_samples, size, size), np.uint8)
  heatmaps = np.zeros((num_samples, size, size), np.float32)
  target_rma = rng.uniform(0.0, 1.0, num_samples).astype(np.float32)
  for i in range(num_samples):
    y0, x0 = rng.integers(0, size // 2, 2)
    height, width = rng.integers(2, size // 2, 2)
    y1, x1 = y0 + height, x0 + width
    masks[i, y0:y1, x0:x1] = 1
    inside = masks[i] == 1
    heatmaps[i][inside] = target_rma[i] / inside.sum()
    heatmaps[i][~inside] = (1 - target_rma[i]) / (~inside).sum()
  heatmaps *= rng.uniform(0.5, 5.0, (num_samples, 1, 1)).astype(np.float32)
  correct = rng.random(num_samples) < 0.7
  return heatmaps, masks, target_rma, correct


def run(config, workdir: str) -> dict:
  heatmaps, masks, target_rma, correct = make_problem(
    config.seed, config.num_samples, config.image_size
  )

  @jax.jit
  def evaluate(heatmaps, masks, correct):
    rma = metrics.rma(heatmaps, masks)
    valid = metrics.valid_evidence(rma, config.threshold)
    counts = metrics.rationality_counts(correct, valid)
    return rma, counts

  rma, counts = evaluate(
    jnp.asarray(heatmaps), jnp.asarray(masks), jnp.asarray(correct)
  )
  rma = np.asarray(rma)

  reference_rma = np.einsum(
    "nhw,nhw->n", heatmaps, masks.astype(np.float32)
  ) / heatmaps.sum(axis=(1, 2))
  valid = reference_rma >= config.threshold
  rr = int(np.sum(correct & valid))
  rw = int(np.sum(correct & ~valid))
  wr = int(np.sum(~correct & valid))
  expected = {
    "pt": rr / (rr + rw),
    "ir": rr / (rr + wr),
    "accuracy": float(np.mean(correct)),
  }
  got = {
    "pt": float(metrics.prediction_trustworthiness(counts)),
    "ir": float(metrics.inference_reliability(counts)),
    "accuracy": float(metrics.accuracy(counts)),
  }

  failures = []
  rma_error = float(np.max(np.abs(rma - target_rma)))
  if rma_error > config.tolerance:
    failures.append(
      f"RMA differs from the constructed value by {rma_error:.2e}"
    )
  # Samples within float rounding of the threshold may fall either side.
  near = np.abs(reference_rma - config.threshold) < 1e-6
  if not near.any():
    for name in expected:
      if abs(expected[name] - got[name]) > 1e-6:
        failures.append(f"{name}: jax {got[name]} vs numpy {expected[name]}")
  result = {
    "num_samples": int(config.num_samples),
    "max_abs_rma_error": rma_error,
    "counts": counts.as_dict(),
    "jax": got,
    "numpy": expected,
    "failures": failures,
    "backend": jax.default_backend(),
  }
  files.write_json(os.path.join(workdir, RESULT), result)
  if failures:
    raise RuntimeError("metrics self-check failed: " + "; ".join(failures))
  logging.info("all checks passed: %s", json.dumps(result))
  print(
    f"all checks passed on {result['backend']}: {got}, max |RMA error| "
    f"{rma_error:.1e}; written to {os.path.join(workdir, RESULT)}"
  )
  return result
