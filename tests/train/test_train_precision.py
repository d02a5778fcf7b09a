"""Mixed precision in training: bfloat16 / float16 compute, float32 master weights.

300 FT steps of the demo's model on the synthetic benchmark in each compute
dtype; the loss curves must follow float32's within the tolerances recorded
in docs/training.md (measured here, with margin).
"""

import numpy as np
import pytest

from rationality_jax import resources
from rationality_jax.run import train

STEPS = 300
# Largest |loss - float32 loss| over the curve (logged every 10 steps), and
# of the mean of the last 50 steps' logged losses.
TOLERANCE = {"bfloat16": (0.01, 0.005), "float16": (0.002, 0.001)}


def _losses(worker, data_dir, workdir, dtype):
  config = worker.tiny_config(
    "ft",
    data_dir,
    **{
      "model.path": str(resources.demo_model()),
      "model.image_size": 16,
      "model.dtype": dtype,
      "train.total_steps": STEPS,
      "train.log_every": 10,
      "train.batch_size": 32,
      "train.optim.lr": 3e-4,
    },
  )
  result = train.train_and_evaluate(config, str(workdir))
  return np.asarray([loss for _, loss in result["losses"]])


@pytest.fixture(scope="module")
def float32(worker, data_dir, tmp_path_factory):
  return _losses(worker, data_dir, tmp_path_factory.mktemp("f32"), "float32")


@pytest.mark.slow
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_loss_curve_follows_float32(dtype, float32, worker, data_dir, tmp_path):
  losses = _losses(worker, data_dir, tmp_path, dtype)
  assert losses.shape == float32.shape == (STEPS // 10,)
  assert np.isfinite(losses).all()
  curve, end = TOLERANCE[dtype]
  gap = np.abs(losses - float32)
  print(
    f"{dtype}: max |dloss| {gap.max():.4f}, last-50 mean "
    f"{abs(losses[-5:].mean() - float32[-5:].mean()):.4f}, "
    f"float32 {float32[0]:.3f} -> {float32[-1]:.3f}"
  )
  assert gap.max() < curve
  assert abs(losses[-5:].mean() - float32[-5:].mean()) < end
  assert float32[-1] < float32[0] - 0.05  # the curve being matched moves
