"""The same run on 1 device, on 8 devices (data parallel, FSDP) and on 2 processes."""

import json
import socket

import numpy as np
import pytest

from rationality_jax.run import checkpoints
from rationality_jax.run import train

STEPS = 4
# Adam's eps 1e-4 instead of 1e-8: the key bias of attention has an exactly zero
# gradient in exact arithmetic (softmax ignores a per-query constant), so its
# float gradient is rounding noise (1e-10..1e-8) that Adam with a small eps
# turns into +-lr steps whose sign depends on the summation order (so on the
# device count). With eps 1e-4 noise stays noise and every leaf is compared.
OVERRIDES = {"train.total_steps": STEPS, "train.optim.eps": 1e-4}


def _result(process):
  out, err = process.communicate(timeout=900)
  assert process.returncode == 0, err[-4000:]
  line = [x for x in out.splitlines() if x.startswith("RESULT ")][-1]
  return json.loads(line[len("RESULT ") :])


@pytest.fixture(scope="module")
def single_device(tmp_path_factory, data_dir, worker):
  workdir = str(tmp_path_factory.mktemp("single"))
  config = worker.tiny_config("flcp", data_dir, **OVERRIDES)
  result = train.train_and_evaluate(config, workdir)
  return worker.flat_params(workdir), result, workdir


def _assert_same(params, reference):
  assert params.keys() == reference.keys()
  for name in reference:
    np.testing.assert_allclose(
      params[name], reference[name], rtol=0, atol=1e-5, err_msg=name
    )


@pytest.mark.slow
@pytest.mark.parametrize(
  "mesh",
  [[["data", 8], ["fsdp", 1]], [["data", 2], ["fsdp", 4]]],
  ids=["data_parallel", "fsdp"],
)
def test_train_eight_devices_match_one(
  mesh, single_device, data_dir, worker, tmp_path
):
  reference, reference_result, _ = single_device
  spec = {
    "method": "flcp",
    "data_dir": data_dir,
    "workdir": str(tmp_path / "run"),
    "params_out": str(tmp_path / "params.npz"),
    "overrides": dict(OVERRIDES, mesh=mesh),
  }
  result = _result(
    worker.start(spec, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  )
  assert result["devices"] == 8
  np.testing.assert_allclose(
    [loss for _, loss in result["losses"]],
    [loss for _, loss in reference_result["losses"]],
    atol=1e-5,
  )
  with np.load(tmp_path / "params.npz") as f:
    _assert_same(dict(f), reference)


@pytest.mark.slow
def test_train_two_processes_match_one(
  single_device, data_dir, worker, tmp_path
):
  reference, _, reference_dir = single_device
  with socket.socket() as s:
    s.bind(("localhost", 0))
    port = s.getsockname()[1]
  processes = []
  for i in range(2):
    spec = {
      "method": "flcp",
      "data_dir": data_dir,
      "workdir": str(tmp_path / "run"),
      "params_out": str(tmp_path / "params.npz"),
      "overrides": OVERRIDES,
      "distributed": {
        "distributed.coordinator_address": f"localhost:{port}",
        "distributed.num_processes": 2,
        "distributed.process_id": i,
      },
    }
    processes.append(worker.start(spec))
  results = [_result(p) for p in processes]
  assert [r["processes"] for r in results] == [2, 2]
  assert results[0]["losses"] == results[1]["losses"]
  with np.load(tmp_path / "params.npz") as f:
    _assert_same(dict(f), reference)
  # FLCP's evaluation head, rebuilt on each host from the gathered text tower.
  heads = [
    checkpoints.read(d, items=("eval_head",))["eval_head"]["class_embeddings"]
    for d in (str(tmp_path / "run"), reference_dir)
  ]
  assert heads[0].shape == heads[1].shape == (4, 16)
  np.testing.assert_allclose(heads[0], heads[1], atol=1e-5)


@pytest.mark.slow
def test_train_guided_on_eight_devices_matches_one(data_dir, worker, tmp_path):
  """The second-order step with its mask choice (2 per class: the batch's
  lax.cond) under FSDP on 8 devices = 1 device."""
  overrides = dict(OVERRIDES, **{"guided.masks_per_class": 2})
  config = worker.tiny_config("guided", data_dir, **overrides)
  single = train.train_and_evaluate(config, str(tmp_path / "single"))
  reference = worker.flat_params(str(tmp_path / "single"))
  spec = {
    "method": "guided",
    "data_dir": data_dir,
    "workdir": str(tmp_path / "run"),
    "params_out": str(tmp_path / "params.npz"),
    "overrides": dict(overrides, mesh=[["data", 2], ["fsdp", 4]]),
  }
  result = _result(
    worker.start(spec, XLA_FLAGS="--xla_force_host_platform_device_count=8")
  )
  assert result["devices"] == 8
  np.testing.assert_allclose(
    [loss for _, loss in result["losses"]],
    [loss for _, loss in single["losses"]],
    atol=1e-5,
  )
  with np.load(tmp_path / "params.npz") as f:
    _assert_same(dict(f), reference)
