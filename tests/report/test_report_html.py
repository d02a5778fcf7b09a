"""report.html in a real browser: the quick demo's page (and a page of fake
runs of two models and two datasets), headless Chromium.

Debian's ``chromium`` driven by Playwright (``executable_path``: no browser
download). Without either the test is skipped, unless
RATIONALITY_REQUIRE_BROWSER=1 (set by .ci/run, which installs both): then
it fails. Any console message of type error, or an uncaught exception, fails
it.
"""

import contextlib
import csv
import itertools
import os
import pathlib
import re
import shutil

import numpy as np
import pytest

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax import report
from rationality_jax.report import gallery
from tests import sealed

REQUIRED = os.environ.get("RATIONALITY_REQUIRE_BROWSER") == "1"
CELLS = ("RR", "RW", "WR", "WW")


def _chromium() -> str:
  for name in ("chromium", "chromium-browser"):
    path = shutil.which(name)
    if path:
      return path
  if REQUIRED:
    pytest.fail("chromium is not installed (apt-get install -y chromium)")
  pytest.skip("chromium is not installed")


def _playwright():
  try:
    from playwright.sync_api import sync_playwright
  except ImportError:
    if REQUIRED:
      pytest.fail("playwright is not installed (pip install -e '.[test]')")
    pytest.skip("playwright is not installed")
  return sync_playwright


@pytest.fixture(scope="module")
def browser():
  """(chromium's path, Playwright's sync_playwright), or skipped."""
  return _chromium(), _playwright()


@pytest.fixture(scope="module")
def demo(browser, quick_demo):
  """The quick demo's workdir (made once, shared with tests/e2e)."""
  return quick_demo[0]


@contextlib.contextmanager
def _opened(browser, path):
  """A tab with `path` open from disk; fails on console errors and on
  thumbnails that do not load."""
  executable, sync_playwright = browser
  errors = []
  with sync_playwright() as p:
    chromium = p.chromium.launch(executable_path=executable, headless=True)
    tab = chromium.new_page(viewport={"width": 1280, "height": 900})
    tab.on(
      "console",
      lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto(path.as_uri())
    tab.wait_for_function("document.documentElement.dataset.ready === '1'")
    yield tab
    # Every thumbnail on the page loaded (none is referenced that is absent).
    broken = tab.evaluate(
      "[...document.images].filter(i => i.complete && !i.naturalWidth)"
      ".map(i => i.src)"
    )
    chromium.close()
  assert not errors, errors
  assert not broken, broken


@pytest.fixture
def page(browser, demo):
  """The quick demo's (a grid's) report.html."""
  with _opened(browser, demo / "report.html") as tab:
    yield demo, tab


def _records(run_dir) -> dict[str, np.ndarray]:
  with open(run_dir / "records.csv") as f:
    rows = list(csv.DictReader(f))
  return {k: np.asarray([r[k] for r in rows]) for k in rows[0]}


def _cells(run_dir, threshold=0.5) -> dict[str, str]:
  """{id: RR/RW/WR/WW} from records.csv alone (the demo has no undefined)."""
  r = _records(run_dir)
  right = r["correct"].astype(int) == 1
  valid = r["rma"].astype(float) >= threshold
  names = np.where(right, np.where(valid, "RR", "RW"), "")
  names = np.where(~right, np.where(valid, "WR", "WW"), names)
  return dict(zip(r["id"].tolist(), names.tolist()))


def _shown(tab) -> list[str]:
  return tab.eval_on_selector_all(
    "[data-sample]", "nodes => nodes.map(n => n.dataset.sample)"
  )


def _count(tab) -> int:
  return int(tab.get_attribute("#count", "data-count"))


def test_cell_filters_show_the_samples_records_csv_counts(page):
  workdir, tab = page
  zs, ft = (_cells(workdir / "eval" / name) for name in ("zs", "ft"))
  assert _count(tab) == len(zs) == 100
  assert len(_shown(tab)) == 50  # the first page
  # The samples fine-tuning made right for the wrong reason: RR under ZS,
  # RW under FT.
  tab.select_option("select[data-run='zs']", "RR")
  tab.select_option("select[data-run='ft']", "RW")
  expected = {i for i in zs if zs[i] == "RR" and ft[i] == "RW"}
  assert expected  # the demo has some
  assert _count(tab) == len(expected)
  assert set(_shown(tab)) == expected
  # Each row shows one panel per run, with the run's own cell.
  row = tab.locator("[data-sample]").first
  assert row.locator("figure.panel.c0").count() >= 1  # RR under zs
  assert row.locator("figure.panel.c1").count() >= 1  # RW under ft
  # Right or wrong under LP, on top.
  lp = _cells(workdir / "eval" / "lp")
  tab.select_option("select[data-run='lp']", "wrong")
  assert _count(tab) == sum(lp[i] in ("WR", "WW") for i in expected)


def test_transition_matrix_counts_and_lists_its_samples(page):
  workdir, tab = page
  zs, ft = (_cells(workdir / "eval" / name) for name in ("zs", "ft"))
  report = (workdir / "report.md").read_text()
  assert "[report.html](report.html)" in report
  assert "## Transitions from zero-shot" in report
  table = report.split("zs -> ft**", 1)[1]
  for before in CELLS:
    line = re.search(rf"^\| {before} \|(.*)$", table, re.M).group(1)
    counts = [int(c) for c in line.strip(" |").split("|")][:4]
    assert counts == [
      sum(zs[i] == before and ft[i] == after for i in zs) for after in CELLS
    ]
  button = tab.locator("table.matrix button[title='WR under zs, RR under ft']")
  if button.count():
    button.click()
    expected = {i for i in zs if zs[i] == "WR" and ft[i] == "RR"}
    assert _count(tab) == len(expected)
    assert set(_shown(tab)) == expected


def test_sorting_class_filter_and_pages(page):
  workdir, tab = page
  zs = _records(workdir / "eval" / "zs")
  ft = _records(workdir / "eval" / "ft")
  delta = dict(zip(ft["id"], ft["rma"].astype(float) - zs["rma"].astype(float)))
  tab.select_option("#sort", "delta")
  tab.select_option("#sort-a", label="zs")
  tab.select_option("#sort-b", label="ft")
  tab.select_option("#page-size", "25")
  first = _shown(tab)
  assert len(first) == 25
  # The page sorts the RMAs it holds (3 decimals): equal to 2e-3 here.
  values = [delta[i] for i in first]
  assert all(a >= b - 2e-3 for a, b in itertools.pairwise(values))
  assert values[0] == pytest.approx(max(delta.values()), abs=2e-3)
  tab.locator("button.next").first.click()
  assert len(set(_shown(tab)) & set(first)) == 0
  # By confidence under zs, ascending.
  tab.select_option("#sort", "confidence")
  tab.select_option("#order", "asc")
  confidence = dict(zip(zs["id"], zs["confidence"].astype(float)))
  shown = [confidence[i] for i in _shown(tab)]
  assert all(a <= b + 1e-3 for a, b in itertools.pairwise(shown))
  assert shown[0] == pytest.approx(min(confidence.values()), abs=1e-3)
  # One class.
  label = int(zs["label"][0])
  tab.select_option("#class", str(label))
  assert _count(tab) == int(np.sum(zs["label"].astype(int) == label))


def _fake_run(directory, model, dataset, method, n=30, seed=0):
  """An evaluation's records, meta.json and every sample's thumbnails."""
  rng = np.random.default_rng(seed)
  folder = directory / "records" / "p0-of-1"
  os.makedirs(folder)
  ids = np.asarray([f"{dataset}/{i:03d}" for i in range(n)])
  host = {
    "correct": rng.random(n) < 0.6,
    "rma": rng.random(n).astype(np.float32),
    "mask_area": np.full(n, 64),
  }
  metrics.Accumulator().add(
    ids=ids,
    index=np.arange(n),
    label=rng.integers(0, 3, n),
    prediction=rng.integers(0, 3, n),
    confidence=rng.random(n),
    **host,
  ).save(folder / "chunk_000000.npz")
  keeper = gallery.Plan(-1, n, 0.5, "").keeper()
  mask = np.zeros((n, 16, 16), np.uint8)
  mask[:, 4:12, 4:12] = 1
  local = {
    "image": rng.integers(0, 255, (n, 16, 16, 3), np.uint8),
    "mask": mask,
  }
  heat = rng.random((n, 16, 16)).astype(np.float32)
  keeper.take(ids, np.arange(n), local, host, np.ones(n, bool), heat)
  keeper.save(str(folder / "gallery_000000.npz"))
  meta = dict(model=model, dataset=dataset, method=method, name=method)
  meta.update(split="test", class_names=["a", "b", "c"])
  files.write_json(directory / "meta.json", meta)
  return sealed.seal(directory)


def test_groups_switch_by_model_and_dataset(browser, tmp_path):
  cells = [
    ("m1", "d1", "zs", 30),
    ("m1", "d1", "ft", 30),
    ("m1", "d2", "zs", 40),
    ("m2", "d1", "zs", 45),
  ]
  runs = [
    _fake_run(tmp_path / f"{m}-{d}-{method}", m, d, method, n=n, seed=k)
    for k, (m, d, method, n) in enumerate(cells)
  ]
  path = report.write_html(runs, str(tmp_path), title="groups")
  with _opened(browser, pathlib.Path(path)) as tab:
    assert _count(tab) == 30  # m1 / d1: zs and ft on the same 30 samples
    assert len(tab.locator("[data-sample]").first.locator("img").all()) == 3
    tab.select_option("#dataset", label="d2 (test)")
    assert _count(tab) == 40
    assert tab.locator("select[data-run]").count() == 1
    tab.select_option("#model", "m2")
    assert _count(tab) == 45
    assert "m2 / d1" in tab.inner_text("#summary")
