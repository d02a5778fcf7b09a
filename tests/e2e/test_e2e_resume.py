"""A killed evaluation resumes where it stopped and ends with the same records and report."""

import json
import os

import numpy as np
import pytest

from rationality_jax import data
from rationality_jax import files
from rationality_jax import report
from rationality_jax.report import records
from rationality_jax.run import checkpoints
from rationality_jax.run import outputs
from rationality_jax.run import recorder
from rationality_jax.run import stream
from tests import sealed
from tests import tiny_model

PP = "normalize('clip')|keep('image', 'mask', 'label', 'id')"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
  """(explain_fn, params, head, source): a random tiny CLIP with a random zero-shot head."""
  data_dir = tmp_path_factory.mktemp("data")
  data.build(
    "synthetic_rationality", data_dir, image_size=32, train_size=8, test_size=70
  )
  source = data.get_source(
    "synthetic_rationality",
    "test",
    data_dir,
    image_size=32,
    train_size=8,
    test_size=70,
  )
  module, params, head, explain_fn = tiny_model.zero_shot_explainer()
  return explain_fn, params, head, source, module


class Killed(Exception):
  """Stands for SIGKILL after a batch."""


def _evaluate(setup, out_dir, monkeypatch=None, kill_after=None, workers=0):
  """Records of the tiny model in `out_dir`, finalised unless killed."""
  explain_fn, params, head, source, module = setup
  if kill_after is not None:

    def after_batch(batches):
      if batches >= kill_after:
        raise Killed(batches)

    monkeypatch.setattr(stream, "_after_batch", after_batch)
  trained = checkpoints.Trained(
    module=module,
    params=params,
    head=head,
    method="zs",
    classifier=None,
    step=0,
    meta={},
  )
  os.makedirs(out_dir, exist_ok=True)
  files.write_json(
    os.path.join(out_dir, "meta.json"),
    {"name": "zs", "model": "tiny", "dataset": "synthetic", "method": "zs"},
  )
  try:
    stream.evaluate_records(
      explain_fn,
      trained,
      source,
      str(out_dir),
      spec=PP,
      batch_size=16,
      name="zs",
      figure_ids=["test_0000003", "test_0000040"],
      num_workers=workers,
    )
  finally:
    if kill_after is not None:
      monkeypatch.undo()
  summary = outputs.finalise(str(out_dir), figures=False)[0]
  sealed.seal(out_dir)  # as `Run.complete` would: these records are complete
  return summary


def _progress(out_dir):
  return files.read_json(
    os.path.join(records.process_dir(str(out_dir)), recorder.PROGRESS)
  )


def _report_without_paths(out_dir):
  rows = report.collect([str(out_dir)])
  report.write(rows, str(out_dir))
  with open(os.path.join(out_dir, "results.csv")) as f:
    text = f.read()
  with open(os.path.join(out_dir, "report.md")) as f:
    md = f.read()
  # As JSON: a NaN (a statistic the run does not have) equals itself there.
  return (
    json.dumps([r for r in rows if r.pop("run_dir")], sort_keys=True),
    text.replace(str(out_dir), "RUN"),
    md,
  )


@pytest.mark.slow
def test_killed_evaluation_resumes_to_the_same_report(
  setup, tmp_path, monkeypatch
):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  expected = _evaluate(setup, whole)
  with pytest.raises(Killed):
    _evaluate(setup, killed, monkeypatch, kill_after=2)
  assert _progress(killed) == dict(_progress(killed), chunks=2, complete=False)
  # A chunk written after the last progress marker (killed in between) is dropped.
  shard = records.process_dir(str(killed))
  # A report is never made from a partial run's records.
  with pytest.raises(records.IncompleteRunError, match="nothing says"):
    records.load(str(killed))
  with records.unverified(str(killed)):
    records.load(str(killed)).save(os.path.join(shard, "chunk_000002.npz"))
  with pytest.raises(Killed):  # killed a second time, one batch later
    _evaluate(setup, killed, monkeypatch, kill_after=1)
  with records.unverified(str(killed)):
    assert len(records.load(str(killed))) == 48
  resumed = _evaluate(setup, killed)
  assert resumed == expected and expected["n"] == 70

  a, b = records.load(str(whole)).arrays(), records.load(str(killed)).arrays()
  assert list(a["ids"]) == list(b["ids"]) and len(set(a["ids"])) == 70
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  # Resumed with another worker count: its saved input state does not fit,
  # so the input starts again and the recorded ids are skipped.
  other = tmp_path / "other"
  with pytest.raises(Killed):
    _evaluate(setup, other, monkeypatch, kill_after=2, workers=2)
  assert _evaluate(setup, other, workers=0) == expected
  c = records.load(str(other)).arrays()
  assert sorted(c["ids"]) == sorted(a["ids"])
  assert _report_without_paths(whole) == _report_without_paths(killed)
  heatmaps = records.load_heatmaps(str(killed))
  assert sorted(heatmaps) == ["test_0000003", "test_0000040"]
  np.testing.assert_array_equal(
    heatmaps["test_0000040"], records.load_heatmaps(str(whole))["test_0000040"]
  )
  # A finished shard is not evaluated again: its records stay untouched.
  chunk = os.path.join(shard, "chunk_000000.npz")
  mtime = os.path.getmtime(chunk)
  assert _evaluate(setup, killed) == expected
  assert os.path.getmtime(chunk) == mtime


@pytest.mark.slow
def test_input_worker_processes_give_the_same_records_and_resume(
  setup, tmp_path, monkeypatch
):
  """evaluate.input_workers: decoding in 2 processes changes no record, and a
  run killed mid-way resumes from the workers' saved state."""
  threads, workers = tmp_path / "threads", tmp_path / "workers"
  expected = _evaluate(setup, threads)
  with pytest.raises(Killed):
    _evaluate(setup, workers, monkeypatch, kill_after=2, workers=2)
  assert _progress(workers)["iterator"]["config"]["num_workers"] == 2
  with records.unverified(str(workers)):  # a partial run, read on purpose
    assert len(records.load(str(workers))) == 32
  assert _evaluate(setup, workers, workers=2) == expected
  a, b = (
    records.load(str(threads)).arrays(),
    records.load(str(workers)).arrays(),
  )
  assert list(a["ids"]) == list(b["ids"]) and len(a["ids"]) == 70
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
