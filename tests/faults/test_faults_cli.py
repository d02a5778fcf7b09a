"""Faults and misuse through the command: a clear refusal or a visible count.

Each test is one case of the "Trustworthy runs" list: a run never exits 0 with
a wrong number, never reuses stale results, never shares its workdir, never
saves a non-finite state, never loses or truncates an output, and refuses an
out-of-range setting before any work, in one line naming the key.

The out-of-range settings are checked in this process - the command's own
flag parsing (`cli.config`) and `main.run`, which validates first - and one
of them through the command line, for the one line and the empty workdir.
The other cases run the command in this process too (`cli.run`: the same
flags, then `main.execute`, which prints the one line), except the held
workdir, whose holder is this process.
"""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from rationality_jax import files
from rationality_jax import models
from rationality_jax import resources
from rationality_jax.run import checkpoints
from rationality_jax.run import config as config_lib
from rationality_jax.run import validate
from tests import cli

DEMO = str(resources.demo_model())
SMALL = [
  "--config.train_data.builder_kwargs.train_size=64",
  "--config.train_data.builder_kwargs.test_size=16",
]


_main = cli.run
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

OUT_OF_RANGE = [
  ("--config.evaluate.threshold=1.5", "config.evaluate.threshold"),
  ("--config.train.num_epochs=-1", "config.train.num_epochs"),
  ("--config.train.optim.lr=-0.01", "config.train.optim.lr"),
  ("--config.train.optim.lr=nan", "config.train.optim.lr"),
  ("--config.train.log_every=0", "config.train.log_every"),
  ("--config.heatmap.name=gradcamm", "config.heatmap.name"),
  ("--config.model.path=", "config.model.path"),
  ("--config.evaluate.input_workers=-1", "config.evaluate.input_workers"),
]
TRAIN_LP = "--config=configs/train.py:method=lp,model=random:tiny"


def _refused_in_process(*args, tmp_path):
  """What the command does with `args` before any work: the same flag
  parsing, then `main.run`, whose first step is `validate.validate`."""
  from rationality_jax import main

  config = cli.config(*args)
  workdir = tmp_path / "workdir"
  with pytest.raises(config_lib.ConfigError) as refused:
    main.run(config, str(workdir))
  assert not workdir.exists()  # refused before any work: nothing written
  with pytest.raises(config_lib.ConfigError) as validated:
    validate.validate(config)
  assert str(validated.value) == str(refused.value)
  # The command prints "error: ConfigError: <first line>" (main.main).
  return str(refused.value).splitlines()[0]


@pytest.mark.parametrize("override, key", OUT_OF_RANGE)
def test_out_of_range_setting_is_refused_naming_the_key(
  override, key, tmp_path
):
  line = _refused_in_process(TRAIN_LP, override, tmp_path=tmp_path)
  assert line.startswith(key + ": "), line


def test_out_of_range_setting_is_one_line_naming_the_key(tmp_path):
  """The command line: one line, no traceback, nothing written."""
  override, key = OUT_OF_RANGE[0]
  result = cli.main(TRAIN_LP, override, workdir=tmp_path, check=False)
  assert result.returncode == 1
  line = _last_line(result)
  assert line.startswith("error: ConfigError: " + key), line
  assert "Traceback" not in result.stderr
  # Refused before any work: the workdir is as it was (empty); the log
  # went to a temporary file.
  assert os.listdir(tmp_path) == []


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
  line = _refused_in_process(
    "--config=configs/paper.py:models=albef_b16,datasets=cub,parts=main",
    tmp_path=tmp_path,
  )
  assert line.startswith("config.models.albef_b16.path: no checkpoint"), line


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
# One evaluation and one training run of the demo model, made once and copied
# into each test that reruns on them (a copied workdir is the same run).

TRAIN_LP_DEMO = [
  f"--config=configs/train.py:method=lp,model={DEMO},steps=2",
  *SMALL,
]


@pytest.fixture(scope="session")
def evaluated(once):
  """A complete evaluation of the demo model (DEMO, SMALL)."""
  return once("faults_evaluated", lambda d: _evaluate(DEMO, d, check=True))


@pytest.fixture(scope="session")
def trained_lp(once):
  """A finished 2-step LP training run of the demo model (SMALL)."""
  return once(
    "faults_trained_lp", lambda d: _main(*TRAIN_LP_DEMO, workdir=d, check=True)
  )


def _copy(folder, tmp_path):
  return shutil.copytree(folder, tmp_path / "workdir", symlinks=True)


@pytest.mark.slow
def test_another_model_in_the_same_workdir_is_refused_or_fresh(
  evaluated, tmp_path
):
  workdir = _copy(evaluated, tmp_path)
  other = tmp_path / "other_model"
  module, params = models.load(DEMO)
  models.save(
    other, module, jax.tree.map(lambda x: np.asarray(x) * 1.01, params)
  )
  before = (workdir / "records.csv").read_text()
  refused = _evaluate(other, workdir, check=False)
  line = _last_line(refused)
  assert "holds evaluation records of another configuration" in line
  assert "trained.model.path" in line and "--fresh" in line
  assert (workdir / "records.csv").read_text() == before
  _evaluate(other, workdir, "--fresh", check=True)
  fresh = [d for d in os.listdir(workdir) if d.startswith("fresh-")]
  assert len(fresh) == 1
  assert (workdir / fresh[0] / "records.csv").read_text() != before
  other_heatmap = _evaluate(
    DEMO, workdir, "--config.heatmap.start_layer=-1", check=False
  )
  assert "heatmap.start_layer" in _last_line(other_heatmap)


@pytest.mark.slow
def test_resuming_a_training_workdir_with_another_method_is_refused(
  trained_lp, tmp_path
):
  workdir = _copy(trained_lp, tmp_path)
  before = (workdir / "train_result.json").read_bytes()
  result = _main(
    f"--config=configs/train.py:method=ft,model={DEMO},steps=2",
    *SMALL,
    workdir=workdir,
    check=False,
  )
  line = _last_line(result)
  assert "holds a training run of another configuration" in line
  assert "method" in line
  assert (workdir / "train_result.json").read_bytes() == before


@pytest.mark.slow
def test_a_finished_training_rerun_keeps_its_result(trained_lp, tmp_path):
  workdir = _copy(trained_lp, tmp_path)
  path = workdir / "train_result.json"
  before = path.read_bytes()
  assert len(json.loads(before)["losses"]) == 1  # logged at the last step
  _main(*TRAIN_LP_DEMO, workdir=workdir, check=True)
  assert path.read_bytes() == before


# -------------------------------------------------------------- one owner ----


def test_a_second_run_on_the_same_workdir_gets_the_holders_pid(tmp_path):
  """This process holds the workdir (as a running command does): the command
  is refused in one line naming this PID, and leaves the holder's files alone."""
  (tmp_path / "config.json").write_text('{"the": "holder\'s"}')
  with files.WorkdirLock(tmp_path) as lock:
    lock.announce()  # as a run does once it has claimed the directory
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    second = cli.main(
      f"--config=configs/evaluate.py:model={DEMO}",
      *SMALL,
      workdir=tmp_path,
      check=False,
    )
    after = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
  assert second.returncode == 1
  line = _last_line(second)
  assert line.startswith("error: WorkdirBusyError: "), line
  assert "is in use by another run" in line and f"pid {os.getpid()} " in line
  # Refused: every byte of the holder's workdir as it was, nothing added.
  assert after == before
  assert sorted(before) == [files.LOCK, "config.json"]


# ---------------------------------------------------- lost or broken outputs ----


@pytest.mark.slow
def test_a_complete_run_whose_outputs_are_missing_regenerates_them(
  evaluated, tmp_path
):
  workdir = _copy(evaluated, tmp_path)
  names = ("summary.json", "records.csv", "report.md", "pt_ir_threshold.png")
  before = {n: (workdir / n).read_bytes() for n in names[:3]}
  for name in names:
    (workdir / name).unlink()
  again = _evaluate(DEMO, workdir, check=True)
  assert "resuming" not in again.stdout  # no sample is evaluated twice
  for name in names[:3]:
    assert (workdir / name).read_bytes() == before[name], name
  assert (workdir / "pt_ir_threshold.png").stat().st_size > 10_000
