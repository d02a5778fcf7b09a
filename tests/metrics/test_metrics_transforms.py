"""The same numbers from plain calls, jax.jit, jax.vmap and 8 sharded CPU devices."""

import json
import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import metrics
from rationality_jax.metrics import localisation

SCORES = ("rma", "relevance_rank_accuracy", "pointing_game", "iou")


def _problem(n=16, size=12, seed=0):
  rng = np.random.default_rng(seed)
  heatmaps = rng.random((n, size, size)).astype(np.float32)
  heatmaps[1] = 0.0  # zero map
  heatmaps[2, 3, 3] = np.nan  # NaN map
  masks = (rng.random((n, size, size)) < 0.3).astype(np.uint8)
  masks[3] = 0  # empty mask
  correct = rng.random(n) < 0.5
  return heatmaps, masks, correct


def _evaluate(heatmaps, masks, correct):
  out = {name: getattr(metrics, name)(heatmaps, masks) for name in SCORES}
  counts = metrics.rationality_counts(
    correct, metrics.valid_evidence(out["rma"])
  )
  out["pt"] = metrics.prediction_trustworthiness(counts)
  out["ir"] = metrics.inference_reliability(counts)
  out["accuracy"] = metrics.accuracy(counts)
  return out


def _assert_same(a, b):
  for name in a:
    np.testing.assert_allclose(
      np.asarray(a[name]),
      np.asarray(b[name]),
      rtol=1e-6,
      atol=1e-7,
      err_msg=name,
    )


def test_plain_jit_vmap_agree():
  heatmaps, masks, correct = _problem()
  plain = _evaluate(heatmaps, masks, correct)
  assert np.isnan(plain["rma"][2]) and np.isnan(plain["rma"][3])
  assert plain["rma"][1] == 0.0
  _assert_same(plain, jax.jit(_evaluate)(heatmaps, masks, correct))
  per_sample = jax.vmap(
    lambda h, m: {n: getattr(metrics, n)(h, m) for n in SCORES}
  )(heatmaps, masks)
  _assert_same({n: plain[n] for n in SCORES}, per_sample)


def test_sharded_over_8_devices():
  heatmaps, masks, correct = _problem()
  plain = _evaluate(heatmaps, masks, correct)
  script = textwrap.dedent(f"""
        import json, jax, numpy as np
        from jax.sharding import Mesh, NamedSharding, PartitionSpec as P
        import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_metrics_transforms import _problem, _evaluate
        assert jax.device_count() == 8, jax.devices()
        mesh = Mesh(np.array(jax.devices()), ("data",))
        batch = NamedSharding(mesh, P("data"))
        args = [jax.device_put(x, batch) for x in _problem()]
        out = jax.jit(_evaluate)(*args)
        assert len(out["rma"].sharding.device_set) == 8
        print(json.dumps({{k: np.asarray(v).tolist() for k, v in out.items()}}))
    """)
  env = dict(
    os.environ,
    XLA_FLAGS="--xla_force_host_platform_device_count=8",
    JAX_PLATFORMS="cpu",
  )
  result = subprocess.run(
    [sys.executable, "-c", script],
    env=env,
    capture_output=True,
    text=True,
    timeout=300,
  )
  assert result.returncode == 0, result.stderr[-3000:]
  sharded = json.loads(result.stdout.strip().splitlines()[-1])
  _assert_same(
    plain, {k: np.asarray(v, np.float32) for k, v in sharded.items()}
  )


@pytest.mark.parametrize("cores", [1, 2, 3])
def test_cpu_loop_matches_per_sample_values_and_gradients(cores, monkeypatch):
  # 17 maps of 224x224 in groups of 8 per core: with 1 core steps of 8, the
  # last one overlapping the one before (recomputed identically); with 2,
  # steps of 16 in two groups; with 3, one step of 17 in groups of 5, 6, 6.
  # Degenerate cases inside.
  monkeypatch.setattr(localisation, "_cpu_cores", lambda: cores)
  # The jitted sums may have been traced with another count: retrace them
  # (and leave a trace with the machine's count for the tests after this).
  localisation._mass_sums.clear_cache()
  try:
    _check_cpu_loop()
  finally:
    localisation._mass_sums.clear_cache()


def _check_cpu_loop():
  rng = np.random.default_rng(1)
  heatmaps = rng.random((17, 224, 224)).astype(np.float32)
  masks = (rng.random((17, 224, 224)) < 0.2).astype(np.uint8)
  heatmaps[3] = 0.0
  heatmaps[16, 5, 5] = np.nan
  masks[0] = 0
  masks[10] = 0  # also in the last, overlapping step
  batched = metrics.rma(heatmaps, masks)
  one_by_one = [float(metrics.rma(h, m)) for h, m in zip(heatmaps, masks)]
  np.testing.assert_allclose(batched, one_by_one, rtol=1e-6)
  on = masks > 0
  total = heatmaps.sum((1, 2))
  expected = (heatmaps * on).sum((1, 2)) / np.where(total == 0, 1, total)
  expected[[0, 10, 16]] = np.nan
  np.testing.assert_allclose(batched, expected, rtol=1e-5)
  np.testing.assert_array_equal(
    metrics.evidence_columns(heatmaps, masks)["mask_area"], on.sum((1, 2))
  )

  def loss(h):
    return jnp.nansum(metrics.rma(h, masks) * jnp.arange(17.0))

  grad = jax.grad(loss)(heatmaps)
  for i in (1, 2, 15):  # in the first step, and recomputed by the last one
    g = jax.grad(lambda h, i=i: metrics.rma(h, masks[i]))(heatmaps[i])
    np.testing.assert_allclose(grad[i], i * g, rtol=1e-5, atol=1e-12)
  assert metrics.rma(np.zeros((0, 4, 4)), np.zeros((0, 4, 4))).shape == (0,)
