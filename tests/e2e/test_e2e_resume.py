"""A killed evaluation resumes where it stopped and ends with the same records and report."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rationality_jax import data
from rationality_jax import evaluate
from rationality_jax import explain
from rationality_jax import models
from rationality_jax import report

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
  config = models.VLMConfig(
    family="clip",
    embed_dim=16,
    projection_bias=False,
    vision=models.ViTConfig(
      image_size=32, patch_size=8, width=32, depth=2, num_heads=2, mlp_dim=64
    ),
    text=models.CLIPTextConfig(
      vocab_size=64,
      context_length=8,
      width=16,
      depth=1,
      num_heads=2,
      mlp_dim=32,
    ),
  )
  module = models.VisionLanguageModel(config)
  params = module.init(
    jax.random.key(0), jnp.zeros((1, 32, 32, 3)), jnp.ones((1, 8), jnp.int32)
  )["params"]
  head = {"class_embeddings": jax.random.normal(jax.random.key(1), (4, 16))}
  explain_fn = explain.make_explainer(
    module, explain.targets.zero_shot, explain.Chefer(start_layer=0), jit=False
  )
  return explain_fn, params, head, source


def _evaluate(setup, out_dir, **kwargs):
  explain_fn, params, head, source = setup
  return evaluate.run_evaluation(
    explain_fn,
    params,
    head,
    source,
    str(out_dir),
    preprocess=PP,
    batch_size=16,
    meta={
      "name": "zs",
      "model": "tiny",
      "dataset": "synthetic",
      "method": "zs",
    },
    figure_ids=["test_0000003", "test_0000040"],
    **kwargs,
  )


def _report_without_paths(out_dir):
  rows = report.collect([str(out_dir)])
  report.write(rows, str(out_dir))
  with open(os.path.join(out_dir, "results.csv")) as f:
    text = f.read()
  return (
    [r for r in rows if r.pop("run_dir")],
    text.replace(str(out_dir), "RUN"),
    open(os.path.join(out_dir, "report.md")).read(),
  )


def test_killed_evaluation_resumes_to_the_same_report(setup, tmp_path):
  whole, killed = tmp_path / "whole", tmp_path / "killed"
  expected = _evaluate(setup, whole)
  with pytest.raises(evaluate.Interrupted):
    _evaluate(setup, killed, stop_after_batches=2)
  progress = evaluate.read_json(os.path.join(killed, evaluate.PROGRESS))
  assert progress == dict(progress, chunks=2, examples=32, complete=False)
  # A chunk written after the last progress marker (killed in between) is dropped.
  evaluate.load_records(str(killed)).save(
    os.path.join(killed, "records", "chunk_000002.npz")
  )
  with pytest.raises(evaluate.Interrupted):
    _evaluate(setup, killed, stop_after_batches=1)  # killed a second time
  assert (
    evaluate.read_json(os.path.join(killed, evaluate.PROGRESS))["examples"]
    == 48
  )
  resumed = _evaluate(setup, killed)
  assert resumed == expected and expected["n"] == 70

  a, b = (
    evaluate.load_records(str(whole)).arrays(),
    evaluate.load_records(str(killed)).arrays(),
  )
  assert list(a["ids"]) == list(b["ids"]) and len(set(a["ids"])) == 70
  for name in a:
    np.testing.assert_array_equal(a[name], b[name], err_msg=name)
  assert _report_without_paths(whole) == _report_without_paths(killed)
  heatmaps = evaluate.load_heatmaps(str(killed))
  assert sorted(heatmaps) == ["test_0000003", "test_0000040"]
  np.testing.assert_array_equal(
    heatmaps["test_0000040"], evaluate.load_heatmaps(str(whole))["test_0000040"]
  )
  # A finished evaluation is not run again: same summary, records untouched.
  mtime = os.path.getmtime(os.path.join(killed, "records", "chunk_000000.npz"))
  assert _evaluate(setup, killed) == expected
  assert (
    os.path.getmtime(os.path.join(killed, "records", "chunk_000000.npz"))
    == mtime
  )


def test_another_evaluation_in_the_same_directory_is_refused(setup, tmp_path):
  with pytest.raises(evaluate.Interrupted):
    _evaluate(setup, tmp_path, stop_after_batches=1)
  explain_fn, params, head, source = setup
  with pytest.raises(ValueError, match="records of another evaluation"):
    evaluate.run_evaluation(
      explain_fn,
      params,
      head,
      source,
      str(tmp_path),
      preprocess=PP,
      batch_size=16,
      meta={"name": "lp"},
    )


def test_summary_at_any_threshold_from_records_alone(setup, tmp_path):
  _evaluate(setup, tmp_path, stop_after_batches=None)
  arrays = evaluate.load_records(str(tmp_path)).arrays()
  for threshold in (0.1, 0.3, 0.5):
    s = evaluate.summarise(str(tmp_path), threshold)
    valid = arrays["rma"] >= threshold
    right = arrays["correct"]
    rr, rw = np.sum(right & valid), np.sum(right & ~valid)
    wr = np.sum(~right & valid)
    assert (s["rr"], s["rw"], s["wr"]) == (rr, rw, wr)
    assert (
      s["pt"] == pytest.approx(rr / (rr + rw)) if rr + rw else np.isnan(s["pt"])
    )
    assert (
      s["ir"] == pytest.approx(rr / (rr + wr)) if rr + wr else np.isnan(s["ir"])
    )
  assert s["accuracy"] == pytest.approx(
    np.mean(arrays["prediction"] == arrays["label"])
  )
  assert "mean_label" not in s and s["mean_rra"] == pytest.approx(
    np.mean(arrays["rra"])
  )
