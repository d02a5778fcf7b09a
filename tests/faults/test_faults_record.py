"""The run directory tells the truth: refused, partial or tampered runs.

Each test is a case where a workdir could say something other than what was
computed, run through the documented command: a refused run leaves every
byte as it was, every run directory describes itself, complete means
verified (never a smaller n with exit 0), an unfinished training run is
named as such, sizes are checked before memory is spent, and every failure
is one line. The workdir cases run the command in this process (`cli.run`:
its flags, then `main.execute`); the stopped training run, WiSE-FT's stage
and the one-line cases of the flags, the config file and the workdir run
the command line itself (`cli.main`, `cli.start`).
"""

import csv
import hashlib
import io
import json
import logging as py_logging
import os
import pathlib
import signal
import subprocess
import time

import numpy as np
import pytest

from rationality_jax import console
from rationality_jax import manifest
from rationality_jax import metrics
from rationality_jax import report
from rationality_jax import resources
from rationality_jax.report import records
from rationality_jax.run import config as config_lib
from rationality_jax.run import outputs
from rationality_jax.run import record
from tests import cli
from tests.data.conftest import fake  # noqa: F401 - the archive helpers fixture

DEMO = str(resources.demo_model())
SMALL = (
  "--config.train_data.builder_kwargs.train_size=64",
  "--config.train_data.builder_kwargs.test_size=40",
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  """One synthetic build for the module's runs (`--config.data.dir`)."""
  return tmp_path_factory.mktemp("data")


def _run(data_dir, config, workdir, *extra, check=None):
  """The command on the module's small synthetic data, in this process
  (`cli.run`: what it does to the workdir is the test; the command line
  itself is tested by the one-line cases below, through `cli.main`)."""
  return cli.run(
    f"--config={config}",
    *SMALL,
    f"--config.data.dir={data_dir}",
    *extra,
    workdir=workdir,
    check=check,
  )


def _bytes(directory) -> dict[str, str]:
  """{relative path: sha256} of every file below `directory`."""
  root = pathlib.Path(directory)
  return {
    str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
    for p in sorted(root.rglob("*"))
    if p.is_file()
  }


def _json(path):
  return json.loads(pathlib.Path(path).read_text())


@pytest.fixture(scope="module")
def trained(data_dir, tmp_path_factory):
  """A finished 2-step LP run of the demo model."""
  workdir = tmp_path_factory.mktemp("train_lp")
  _run(
    data_dir,
    f"configs/train.py:method=lp,model={DEMO},steps=2",
    workdir,
    "--config.train.eval_accuracy=False",
    check=True,
  )
  return workdir


def test_a_refused_run_leaves_the_workdir_as_it_was(
  data_dir, trained, tmp_path
):
  """Before: the refused run rewrote config.json, and evaluating the
  training run then used the refused run's model and dataset size."""
  before = _bytes(trained)
  refused = _run(
    data_dir,
    "configs/train.py:method=lp,model=random:tiny,steps=2",
    trained,
    "--config.train_data.builder_kwargs.test_size=8",
    check=False,
  )
  assert "holds a training run of another configuration" in cli.last_line(
    refused
  )
  assert "(traceback in /" in cli.last_line(refused)  # a temporary log
  assert _bytes(trained) == before
  _run(
    data_dir, f"configs/evaluate.py:train_dir={trained}", tmp_path, check=True
  )
  meta = _json(tmp_path / "meta.json")
  assert meta["model"] == "demo_clip" and meta["num_examples"] == 40


def test_a_validation_refusal_writes_nothing_and_the_fix_runs(
  data_dir, tmp_path
):
  """Before: a batch larger than the split left fingerprint.json behind, and
  the corrected command was refused as "another configuration"."""
  workdir = tmp_path / "run"
  command = f"configs/train.py:method=lp,model={DEMO},steps=1"
  refused = _run(
    data_dir, command, workdir, "--config.train.batch_size=128", check=False
  )
  assert "config.train.batch_size: 128 is larger than the 64" in (
    cli.last_line(refused)
  )
  assert not workdir.exists()
  _run(data_dir, command, workdir, "--config.train.batch_size=16", check=True)
  assert _json(workdir / "run.json")["status"] == manifest.COMPLETE


@pytest.mark.slow
def test_fresh_makes_a_complete_run_directory_and_leaves_the_parent(
  data_dir, trained, tmp_path
):
  """Before: --fresh overwrote the parent's config.json and log, and the
  fresh directory had no config.json (a fresh training run could not be
  evaluated)."""
  before = _bytes(trained)
  result = _run(
    data_dir,
    "configs/train.py:method=lp,model=random:tiny,steps=1",
    trained,
    "--fresh",
    check=True,
  )
  assert (
    _bytes(trained).items()
    >= {  # the parent's own files are untouched
      k: v for k, v in before.items() if not k.startswith("fresh-")
    }.items()
  )
  (fresh,) = [d for d in trained.iterdir() if d.name.startswith("fresh-")]
  assert f"this run: {fresh}" in result.stdout
  for name in ("config.json", "fingerprint.json", "run.json", "log.txt"):
    assert (fresh / name).exists(), name
  assert _json(fresh / "config.json")["model"]["path"] == "random:tiny"
  _run(data_dir, f"configs/evaluate.py:train_dir={fresh}", tmp_path, check=True)
  assert _json(tmp_path / "meta.json")["model"] == "random:tiny"


@pytest.fixture
def evaluated(data_dir, tmp_path):
  """A complete zero-shot evaluation of the demo model, 5 chunks of 8."""
  args = (
    data_dir,
    f"configs/evaluate.py:model={DEMO}",
    tmp_path,
    "--config.evaluate.batch_size=8",
  )
  _run(*args, check=True)
  return args


@pytest.mark.slow
def test_complete_means_verified(evaluated):
  """Before: a deleted chunk gave n = 32 of 40 with exit 0, and edited
  records or results were reported as they were."""
  _, _, workdir, _ = evaluated
  summary = (workdir / "summary.json").read_text()
  # The records rebuild a table at another threshold (docs/demo.md) ...
  (row,) = report.collect([str(workdir)], threshold=0.3)
  assert row["n"] == 40 and row["threshold"] == 0.3
  chunks = workdir / "records" / "p0-of-1"
  (chunks / "chunk_000002.npz").unlink()
  edited = dict(np.load(chunks / "chunk_000001.npz"))
  edited["rma"] = np.ones_like(edited["rma"])
  np.savez(chunks / "chunk_000001.npz", **edited)
  # ... but never from edited or lost ones, nor from an unlisted chunk.
  problems = "chunk_000001.npz changed, .*chunk_000002.npz missing"
  with pytest.raises(records.IncompleteRunError, match=problems):
    report.collect([str(workdir)], threshold=0.3)
  with pytest.raises(records.IncompleteRunError, match=problems):
    report.write_html([str(workdir)], str(workdir / "elsewhere"))
  result = _run(*evaluated, check=True)
  assert "chunk_000001.npz changed" in result.stderr
  assert "chunk_000002.npz missing" in result.stderr
  assert (workdir / "summary.json").read_text() == summary
  assert _json(workdir / "run.json")["examples"] == 40
  (workdir / "records.csv").write_text("id\n")
  result = _run(*evaluated, check=True)
  assert "records.csv changed" in result.stderr
  assert (workdir / "summary.json").read_text() == summary
  again = _run(*evaluated, check=True)
  assert "not run again" in again.stdout
  (again_row,) = report.collect([str(workdir)], threshold=0.3)
  assert json.dumps(again_row, default=str) == json.dumps(row, default=str)
  (chunks / "chunk_000009.npz").write_bytes(
    (chunks / "chunk_000000.npz").read_bytes()
  )
  with pytest.raises(
    records.IncompleteRunError, match=r"000009\.npz unexpected"
  ):
    records.load(str(workdir))
  (chunks / "chunk_000009.npz").unlink()
  manifest = _json(workdir / "run.json")
  (workdir / "run.json").write_text(
    json.dumps({**manifest, "status": "running"})
  )
  with pytest.raises(
    records.IncompleteRunError, match="'running', not complete"
  ):
    report.collect([str(workdir)])


@pytest.mark.slow
def test_another_threshold_rewrites_the_outputs_it_describes(evaluated):
  """Before: "complete, not run again" while config.json said the new
  threshold and the summary the old one."""
  _, _, workdir, _ = evaluated
  _run(*evaluated, "--config.evaluate.threshold=0.3", check=True)
  assert _json(workdir / "config.json")["evaluate"]["threshold"] == 0.3
  assert _json(workdir / "summary.json")["threshold"] == 0.3


def test_an_evaluation_batch_larger_than_the_split_is_cut(data_dir, tmp_path):
  """Before: batch 100000 on 500 images grew to 24 GB and was killed."""
  result = _run(
    data_dir,
    f"configs/evaluate.py:model={DEMO}",
    tmp_path,
    "--config.evaluate.batch_size=100000",
    check=True,
  )
  assert "evaluate.batch_size: 100000 is larger than the 40" in result.stderr
  assert _json(tmp_path / "config.json")["evaluate"]["batch_size"] == 40
  assert _json(tmp_path / "summary.json")["n"] == 40


@pytest.mark.slow
def test_an_unfinished_training_run_is_refused_or_named(data_dir, tmp_path):
  """Before: a run stopped at step 30 of 120 was evaluated as if finished."""
  train_dir = tmp_path / "train"
  process = cli.start(
    f"--config=configs/train.py:method=lp,model={DEMO},steps=500",
    *SMALL,
    f"--config.data.dir={data_dir}",
    "--config.train.batch_size=8",
    "--config.train.checkpoint.every_steps=2",
    workdir=train_dir,
    stdout=subprocess.DEVNULL,
    stderr=subprocess.DEVNULL,
  )
  deadline = time.time() + 300
  while not (train_dir / "checkpoints" / "2").exists():
    assert time.time() < deadline and process.poll() is None
    time.sleep(0.1)
  process.send_signal(signal.SIGTERM)
  assert process.wait(timeout=300) == 143
  step = record.training_progress(str(train_dir))["step"]
  assert 2 <= step < 500
  command = f"configs/evaluate.py:train_dir={train_dir}"
  refused = _run(data_dir, command, tmp_path / "eval", check=False)
  assert f"is trained {step} of 500 steps (unfinished)" in cli.last_line(
    refused
  )
  assert not (tmp_path / "eval").exists()
  result = _run(
    data_dir,
    command,
    tmp_path / "eval",
    "--config.evaluate.allow_unfinished=True",
    check=True,
  )
  assert f"lp (trained {step} of 500 steps)" in result.stdout
  assert (
    f"trained {step} of 500 steps"
    in (tmp_path / "eval" / "report.md").read_text()
  )


@pytest.mark.slow
def test_wise_ft_from_the_command_line_writes_runs_that_evaluate(
  data_dir, trained, tmp_path
):
  """Before: it printed nothing and wrote alpha_*/checkpoints without a
  config.json: no documented command evaluated it."""
  result = cli.main(
    f"--config=configs/wise_ft.py:train_dir={trained},alphas=0.5",
    workdir=tmp_path / "wise",
    check=True,
  )
  alpha = tmp_path / "wise" / "alpha_0.5"
  assert f"configs/evaluate.py:train_dir={alpha}" in result.stdout
  assert (alpha / "config.json").exists()
  _run(data_dir, f"configs/evaluate.py:train_dir={alpha}", tmp_path / "eval")
  meta = _json(tmp_path / "eval" / "meta.json")
  assert meta["method"] == "wise_ft" and meta["name"] == "wise_ft-0.5"


# ----------------------------------------------------------- one line each ----


@pytest.mark.parametrize(
  "text, expected",
  [
    ("def get_config(arg=None):\n  return 1 +\n", "line 2: SyntaxError"),
    ("import no_such_module\n", "ModuleNotFoundError: No module named"),
  ],
)
def test_a_broken_config_file_is_one_line(text, expected, tmp_path):
  path = tmp_path / "broken.py"
  path.write_text(text)
  result = cli.main(f"--config={path}", workdir=tmp_path / "w")
  assert result.returncode != 0
  (line,) = result.stderr.strip().splitlines()
  assert line.startswith(f"error: {path}") and expected in line, line
  assert not (tmp_path / "w").exists()


def test_an_unknown_colon_argument_is_one_line(tmp_path):
  result = cli.main("--config=configs/train.py:bogus=1", workdir=tmp_path)
  assert result.stderr.strip().splitlines() == [
    "error: configs/train.py:bogus=1: ValueError: unknown argument 'bogus'; "
    "known: ['dataset', 'method', 'model', 'recipe', 'steps']."
  ]


def test_an_unusable_workdir_is_one_line(tmp_path, monkeypatch):
  afile = tmp_path / "a_file"
  afile.write_text("")
  result = cli.main("--config=configs/metrics_selfcheck.py", workdir=afile)
  assert "--workdir: " in cli.last_line(result)
  assert "is a file, not a directory" in cli.last_line(result)
  # A read-only parent (checked in-process: root may write anywhere).
  monkeypatch.setattr(os, "access", lambda path, mode: False)
  with pytest.raises(config_lib.ConfigError, match="is not writable"):
    record.usable(str(tmp_path / "new"))


def test_a_log_file_that_cannot_be_written_is_given_up_silently(capfd):
  """Before: a full disk during an async save printed 1,329 "--- Logging
  error ---" blocks before the error."""

  class Full(io.StringIO):
    def write(self, text):
      raise OSError(28, "No space left on device")

  console.setup()
  handler = py_logging.StreamHandler(Full())
  py_logging.getLogger().addHandler(handler)
  try:
    for i in range(50):
      py_logging.getLogger("orbax").warning("saving %d", i)
  finally:
    py_logging.getLogger().removeHandler(handler)
  assert "Logging error" not in capfd.readouterr().err


def test_a_zero_stride_checkpoint_is_one_line_before_any_allocation(tmp_path):
  """Before: a 1.7 KB TorchScript file built a 3.6 GB array."""
  from tests.models import test_models_torchscript as torchscript_tests

  path = torchscript_tests.one_tensor_archive(
    tmp_path / "m.pt", (30000, 60000), (0, 0)
  )
  result = cli.main(
    f"--config=configs/evaluate.py:model={path}", workdir=tmp_path / "w"
  )
  line = cli.last_line(result)
  assert line.startswith(f"error: CheckpointError: {path}: tensor 'weight'")
  assert "not allocating it" in line and not (tmp_path / "w").exists()


def test_a_malformed_dogs_annotation_is_one_line_naming_it(
  fake,  # noqa: F811 - the fixture imported above
  tmp_path,
  monkeypatch,
):
  """Before: a NaN coordinate failed without naming the file."""
  from tests.data import test_data_annotations as annotations

  manual = annotations.dogs_with(
    fake, tmp_path, monkeypatch, (20, float("nan"), 28, 25)
  )
  result = cli.main(
    f"--config=configs/evaluate.py:model={DEMO},dataset=dogs",
    f"--config.data.manual_dir={manual}",
    workdir=tmp_path / "w",
  )
  line = cli.last_line(result)
  assert f"annotation.tar: Annotation/{annotations.DOG}: box 2 of 2" in line
  assert "not a number" in line


def test_records_csv_quotes_an_id_with_a_comma(tmp_path):
  acc = metrics.Accumulator()
  acc.add(
    correct=np.array([True, False]),
    rma=np.array([0.5, 0.25], np.float32),
    ids=np.array(["a,b", 'say "hi"']),
    mask_area=np.array([4, 5]),
  )
  outputs.write_csv(str(tmp_path), acc)
  rows = list(csv.DictReader((tmp_path / "records.csv").open()))
  assert [r["id"] for r in rows] == ["a,b", 'say "hi"']
  assert [r["rma"] for r in rows] == ["0.5", "0.25"]
