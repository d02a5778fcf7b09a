"""The thumbnails the records keep, the transitions from ZS and the page's data
(no browser: tests/report/test_report_html.py opens the page)."""

import json
import os
import pathlib
import re

import numpy as np
import pytest

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax import report
from rationality_jax.report import gallery
from rationality_jax.report import samples
from tests import sealed

S = 16  # the fake model's input size


def _batches(n=40, batch=8, seed=0):
  """(ids, index, local, host, where, heatmaps) per batch of a fake split."""
  rng = np.random.default_rng(seed)
  for start in range(0, n, batch):
    index = np.arange(start, start + batch)
    host = {
      "correct": rng.random(batch) < 0.7,
      "rma": rng.random(batch).astype(np.float32),
      "mask_area": np.full(batch, 9),
    }
    local = {
      "image": rng.normal(size=(batch, S, S, 3)).astype(np.float32),
      "mask": np.zeros((batch, S, S), np.uint8),
    }
    local["mask"][:, 4:12, 4:12] = 1
    heatmaps = rng.random((batch, S, S)).astype(np.float32)
    ids = np.asarray([f"x{i:03d}" for i in index])
    yield ids, index, local, host, np.ones(batch, bool), heatmaps


def _kept(paths):
  return [i for p in paths for i in np.load(p)["ids"].tolist()]


def test_keeps_a_spread_and_the_first_of_each_cell(tmp_path):
  plan = gallery.Plan(3, 40, 0.5, "resize(16)|normalize('clip')")
  keeper = plan.keeper()
  cells, kept = [], []
  for ids, index, local, host, where, heatmaps in _batches():
    before = sum(len(p["ids"]) for p in keeper.pending)
    keeper.take(ids, index, local, host, where, heatmaps)
    kept += [i for p in keeper.pending for i in p["ids"].tolist()][before:]
    valid = np.where(host["rma"] >= 0.5, 1.0, 0.0)
    cells += gallery.cell_codes(host["correct"], valid).tolist()
  spread = {0, 13, 26}  # floor(k * 40 / 3)
  expected, counts = [], np.zeros(5, int)
  for i, cell in enumerate(cells):
    if i in spread or counts[cell] < 3:
      expected.append(f"x{i:03d}")
      counts[cell] += 1
  assert kept == expected
  keeper.save(str(tmp_path / "gallery_000000.npz"))
  with np.load(tmp_path / "gallery_000000.npz") as saved:
    assert saved["image"].shape == (len(kept), 64, 64, 3)
    assert saved["image"].dtype == np.uint8
    assert saved["mask"].dtype == bool and saved["mask"].any()
    assert saved["heatmap"].dtype == np.uint8


def test_a_resumed_keeper_keeps_what_an_uninterrupted_one_keeps(tmp_path):
  plan = gallery.Plan(2, 40, 0.5, "normalize('imagenet')")
  whole = plan.keeper()
  for batch in _batches():
    whole.take(*batch)
  whole.save(str(tmp_path / "whole.npz"))
  first, second = tmp_path / "a", tmp_path / "b"
  os.makedirs(first)
  os.makedirs(second)
  keeper = plan.keeper()
  batches = list(_batches())
  for batch in batches[:2]:
    keeper.take(*batch)
  keeper.save(str(first / "gallery_000000.npz"))
  keeper = plan.keeper()  # killed: a new process resumes after chunk 0
  keeper.resume([str(first / "gallery_000000.npz")])
  for batch in batches[2:]:
    keeper.take(*batch)
  keeper.save(str(second / "gallery_000001.npz"))
  resumed = _kept([first / "gallery_000000.npz", second / "gallery_000001.npz"])
  assert resumed == _kept([tmp_path / "whole.npz"])


def test_every_sample_or_none():
  assert gallery.Plan(0, 40, 0.5, "").keeper() is None
  keeper = gallery.Plan(-1, 40, 0.5, "").keeper()
  for batch in _batches():
    keeper.take(*batch)
  assert sum(len(p["ids"]) for p in keeper.pending) == 40


@pytest.mark.parametrize(
  "spec, mean",
  [
    ("resize(64)|center_crop(64)|normalize('clip')|keep('image')", 0.48145466),
    ("normalize(preset='imagenet')", 0.485),
    ("normalize(mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))", 0.5),
  ],
)
def test_display_undoes_the_specs_normalization(spec, mean):
  norm = gallery.normalization(spec)
  assert norm[0][0] == pytest.approx(mean)
  pixels = np.random.default_rng(0).integers(0, 256, (1, 4, 4, 3))
  model_input = (pixels / 255.0 - norm[0]) / norm[1]
  np.testing.assert_array_equal(gallery.display(model_input, norm), pixels)
  assert gallery.normalization("resize(64)|center_crop(64)") is None


def _run(directory, method, cells, ids=None, heatmap="chefer"):
  """A fake evaluation whose samples fall in `cells` ('RR', ... 'UN')."""
  n = len(cells)
  ids = ids or [f"s{i}" for i in range(n)]
  correct = np.asarray([c in ("RR", "RW") for c in cells])
  rma = np.asarray(
    [np.nan if c == "UN" else 0.9 if c[1] == "R" else 0.1 for c in cells]
  )
  os.makedirs(os.path.join(directory, "records", "p0-of-1"))
  metrics.Accumulator().add(
    correct=correct,
    rma=rma,
    ids=ids,
    mask_area=np.asarray([0 if c == "UN" else 9 for c in cells]),
    index=np.asarray([int(i[1:]) for i in ids]),
    label=np.zeros(n, int),
    prediction=np.where(correct, 0, 1),
    confidence=np.linspace(0.5, 1, n),
  ).save(os.path.join(directory, "records", "p0-of-1", "chunk_000000.npz"))
  files.write_json(
    os.path.join(directory, "meta.json"),
    {
      "name": method,
      "model": "m",
      "dataset": "d",
      "split": "test",
      "method": method,
      "heatmap": heatmap,
      "class_names": ["cat", "dog"],
    },
  )
  return sealed.seal(directory)


def test_transitions_count_each_sample_from_its_zs_cell(tmp_path):
  zs = _run(tmp_path / "zs", "zs", ["RR", "RR", "RW", "WR", "WW", "UN"])
  ft = _run(tmp_path / "ft", "ft", ["RW", "RR", "RW", "RR", "WW", "WW"])
  # Another sample set: no transitions against ZS, but its own rows.
  lp = _run(tmp_path / "lp", "lp", ["RR", "WW"], ids=["s0", "s9"])
  groups = samples.group_runs([zs, ft, lp])
  assert len(groups) == 1 and groups[0].ids.tolist() == [
    "s0",
    "s1",
    "s2",
    "s3",
    "s4",
    "s5",
    "s9",
  ]
  (base, run, matrix), *others = samples.transitions(groups[0])
  assert not others and (base.name, run.name) == ("zs", "ft")
  expected = np.zeros((5, 5), int)
  for a, b in [(0, 1), (0, 0), (1, 1), (2, 0), (3, 3), (4, 3)]:
    expected[a, b] += 1
  np.testing.assert_array_equal(matrix, expected)
  text = samples.transition_section(groups, 0.5)
  assert "zs -> ft** (3 of 6 samples change cell)" in text
  assert "| undefined | 0 | 0 | 0 | 1 | 0 | 1 |" in text


def test_page_data_is_the_records_and_every_thumbnail_exists(tmp_path):
  zs = _run(tmp_path / "zs", "zs", ["RR", "RW", "WR", "WW"])
  ft = _run(tmp_path / "ft", "ft", ["RW", "RW", "RR", "WW"])
  # Thumbnails of two samples under zs, one under ft.
  for directory, keep in ((zs, ["s0", "s2"]), (ft, ["s2"])):
    keeper = gallery.Plan(-1, 4, 0.5, "").keeper()
    batch = next(_batches(n=4, batch=4))
    ids = np.asarray([f"s{i}" for i in range(4)])
    where = np.isin(ids, keep)
    keeper.take(ids, np.arange(4), batch[2], batch[3], where, batch[5])
    keeper.save(os.path.join(directory, "records", "p0-of-1", "gallery_0.npz"))
    sealed.seal(directory)  # the gallery chunk is one of its records
  path = report.write_html([zs, ft], str(tmp_path), title="t </script>")
  text = pathlib.Path(path).read_text()
  # The title is in the data too: only the two script elements end.
  assert text.count("</script>") == 2
  assert "<title>t &lt;/script&gt;</title>" in text
  data = json.loads(
    re.search(r'id="report-data">(.*?)</script>', text, re.S).group(1)
  )
  (group,) = data["groups"]
  assert group["classes"] == ["cat", "dog"]
  zs_run, ft_run = group["runs"]
  assert zs_run["cell"] == "0123" and ft_run["cell"] == "1103"
  assert zs_run["thumb"] == "1010" and ft_run["thumb"] == "0010"
  assert group["image"] == "1010"
  assert zs_run["summary"]["pt"] == pytest.approx(0.5)
  assert group["transitions"][0]["matrix"][0][1] == 1  # RR -> RW
  for k, run in enumerate(group["runs"]):
    for row, flag in enumerate(run["thumb"]):
      thumb = tmp_path / "gallery" / group["dir"] / run["dir"] / f"{row}.png"
      assert thumb.exists() == (flag == "1"), (k, row)
  assert "http" not in text  # nothing is fetched from a network
