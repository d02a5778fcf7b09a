"""Faults and misuse through the command line: a clear refusal or a visible count.

Each test is one case of the "Trustworthy runs" list: a run never exits 0 with
a wrong number, never reuses stale results, never shares its workdir, never
saves a non-finite state, never loses or truncates an output, and refuses an
out-of-range setting before any work, in one line naming the key.
"""

import json
import os
import subprocess
import time

import jax
import numpy as np
import pytest

from rationality_jax import models
from rationality_jax import resources
from rationality_jax.run import checkpoints
from tests import cli

DEMO = str(resources.demo_model())
SMALL = [
  "--config.train_data.builder_kwargs.train_size=64",
  "--config.train_data.builder_kwargs.test_size=16",
]


_main = cli.main
_last_line = cli.last_line


def _evaluate(model, workdir, *extra, check=None):
  return _main(
    f"--config=configs/evaluate.py:model={model}",
    *SMALL,
    *extra,
    workdir=workdir,
    check=check,
  )


# ------------------------------------------------- out-of-range settings ----


@pytest.mark.parametrize(
  "override, key",
  [
    ("--config.evaluate.threshold=1.5", "config.evaluate.threshold"),
    ("--config.train.num_epochs=-1", "config.train.num_epochs"),
    ("--config.train.optim.lr=-0.01", "config.train.optim.lr"),
    ("--config.train.optim.lr=nan", "config.train.optim.lr"),
    ("--config.train.log_every=0", "config.train.log_every"),
    ("--config.heatmap.name=gradcamm", "config.heatmap.name"),
    ("--config.model.path=", "config.model.path"),
    ("--config.evaluate.input_workers=-1", "config.evaluate.input_workers"),
  ],
)
def test_out_of_range_setting_is_one_line_naming_the_key(
  override, key, tmp_path
):
  result = _main(
    "--config=configs/train.py:method=lp,model=random:tiny",
    override,
    workdir=tmp_path,
    check=False,
  )
  assert result.returncode == 1
  line = _last_line(result)
  assert line.startswith("error: ConfigError: " + key), line
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "checkpoints").exists()  # refused before any work


def test_batch_larger_than_the_split_names_the_key(tmp_path):
  result = _main(
    "--config=configs/train.py:method=lp,model=random:tiny,steps=1",
    *SMALL,
    "--config.train.batch_size=128",
    workdir=tmp_path,
    check=False,
  )
  line = _last_line(result)
  assert "config.train.batch_size: 128 is larger than the 64 examples" in line


def test_image_size_mismatch_names_the_keys_and_sizes(tmp_path):
  result = _evaluate(
    DEMO, tmp_path, "--config.preprocess.eval=resize(48)", check=False
  )
  line = _last_line(result)
  assert "config.preprocess.eval" in line and "model.image_size" in line
  assert "[B, 64, 64, 3]" in line and "48" in line


def test_a_grid_without_a_model_path_names_it(tmp_path):
  result = _main(
    "--config=configs/paper.py:models=albef_b16,datasets=cub,parts=main",
    workdir=tmp_path,
    check=False,
  )
  assert _last_line(result).startswith(
    "error: ConfigError: config.models.albef_b16.path: no checkpoint"
  )


# --------------------------------------------------------- non-finite ----


def test_nan_weights_are_refused_at_load_naming_the_tensor(tmp_path):
  module, params = models.load(DEMO)
  params = jax.tree.map(np.array, params)  # writable copies
  params["vision"]["block_1"]["mlp"]["fc1"]["kernel"][0, 0] = np.nan
  models.save(tmp_path / "nan_model", module, params)
  result = _evaluate(tmp_path / "nan_model", tmp_path / "run", check=False)
  line = _last_line(result)
  assert line.startswith("error: CheckpointError:") and "NaN or inf" in line
  assert "['vision']['block_1']['mlp']['fc1']['kernel']" in line
  assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow
def test_diverging_training_never_saves_a_nonfinite_state(tmp_path):
  args = [
    f"--config=configs/train.py:method=ft,model={DEMO},steps=6",
    *SMALL,
    "--config.train.optim.lr=1e30",
    "--config.train.checkpoint.every_steps=1",
    "--config.train.log_every=100",
    "--config.train.checkpoint.keep=10",
  ]
  for _ in range(2):  # the rerun resumes from the last finite state, not NaN
    result = _main(*args, workdir=tmp_path, check=False)
    line = _last_line(result)
    assert line.startswith("error: NonFiniteStateError:"), line
    assert "not saved" in line
  saved = sorted(
    int(d) for d in os.listdir(tmp_path / "checkpoints") if d.isdigit()
  )
  assert saved and saved[-1] < 6
  for step in saved:
    state = checkpoints.read(str(tmp_path), step, items=("state",))["state"]
    assert checkpoints.first_nonfinite(state) is None, step
  leftovers = [d for d in os.listdir(tmp_path / "checkpoints") if "tmp" in d]
  assert not leftovers and not (tmp_path / "train_result.json").exists()


# ------------------------------------------------------------ provenance ----


@pytest.mark.slow
def test_another_model_in_the_same_workdir_is_refused_or_fresh(tmp_path):
  _evaluate(DEMO, tmp_path, check=True)
  other = tmp_path / "other_model"
  module, params = models.load(DEMO)
  models.save(
    other, module, jax.tree.map(lambda x: np.asarray(x) * 1.01, params)
  )
  before = (tmp_path / "records.csv").read_text()
  refused = _evaluate(other, tmp_path, check=False)
  line = _last_line(refused)
  assert "holds evaluation records of another configuration" in line
  assert "trained.model.path" in line and "--fresh" in line
  assert (tmp_path / "records.csv").read_text() == before
  _evaluate(other, tmp_path, "--fresh", check=True)
  fresh = [d for d in os.listdir(tmp_path) if d.startswith("fresh-")]
  assert len(fresh) == 1
  assert (tmp_path / fresh[0] / "records.csv").read_text() != before
  other_heatmap = _evaluate(
    DEMO, tmp_path, "--config.heatmap.start_layer=-1", check=False
  )
  assert "heatmap.start_layer" in _last_line(other_heatmap)


@pytest.mark.slow
def test_resuming_a_training_workdir_with_another_method_is_refused(tmp_path):
  common = [*SMALL, "--config.train.eval_accuracy=False"]
  _main(
    f"--config=configs/train.py:method=lp,model={DEMO},steps=1",
    *common,
    workdir=tmp_path,
    check=True,
  )
  result = _main(
    f"--config=configs/train.py:method=ft,model={DEMO},steps=1",
    *common,
    workdir=tmp_path,
    check=False,
  )
  line = _last_line(result)
  assert "holds a training run of another configuration" in line
  assert "method" in line


@pytest.mark.slow
def test_a_finished_training_rerun_keeps_its_result(tmp_path):
  args = [f"--config=configs/train.py:method=lp,model={DEMO},steps=2", *SMALL]
  _main(*args, workdir=tmp_path, check=True)
  path = tmp_path / "train_result.json"
  before = path.read_bytes()
  assert len(json.loads(before)["losses"]) == 1  # logged at the last step
  _main(*args, workdir=tmp_path, check=True)
  assert path.read_bytes() == before


# -------------------------------------------------------------- one owner ----


@pytest.mark.slow
def test_a_second_run_on_the_same_workdir_gets_the_holders_pid(tmp_path):
  first = cli.start(
    f"--config=configs/evaluate.py:model={DEMO}",
    *SMALL,
    workdir=tmp_path,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  deadline = time.time() + 120
  while time.time() < deadline and not (tmp_path / "config.json").exists():
    time.sleep(0.05)
  second = _evaluate(DEMO, tmp_path, check=False)
  assert first.wait(timeout=600) == 0
  line = _last_line(second)
  assert "is in use by another run" in line and f"pid {first.pid}" in line
  assert (tmp_path / "summary.json").exists()  # the first one's, untouched


# ---------------------------------------------------- lost or broken outputs ----


@pytest.mark.slow
def test_a_complete_run_whose_outputs_are_missing_regenerates_them(tmp_path):
  _evaluate(DEMO, tmp_path, check=True)
  names = ("summary.json", "records.csv", "report.md", "pt_ir_threshold.png")
  before = {n: (tmp_path / n).read_bytes() for n in names[:3]}
  for name in names:
    (tmp_path / name).unlink()
  again = _evaluate(DEMO, tmp_path, check=True)
  assert "resuming" not in again.stdout  # no sample is evaluated twice
  for name in names[:3]:
    assert (tmp_path / name).read_bytes() == before[name], name
  assert (tmp_path / "pt_ir_threshold.png").stat().st_size > 10_000
