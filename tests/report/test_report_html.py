"""report.html in a real browser: the quick demo's page, headless Chromium.

Debian's ``chromium`` driven by Playwright (``executable_path``: no browser
download). Without either the test is skipped, unless
RATIONALITY_REQUIRE_BROWSER=1 (set by .ci/run, which installs both): then
it fails. Any console message of type error, or an uncaught exception, fails
it.
"""

import csv
import itertools
import os
import re
import shutil

import numpy as np
import pytest

from tests import cli

DEMO = "--config=configs/demo.py:quick=1"
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
def demo(tmp_path_factory):
  executable, sync_playwright = _chromium(), _playwright()
  workdir = tmp_path_factory.mktemp("demo")
  cli.main(DEMO, workdir=workdir, check=True)
  return workdir, executable, sync_playwright


@pytest.fixture
def page(demo):
  """The grid's report.html, opened from disk; fails on console errors."""
  workdir, executable, sync_playwright = demo
  errors = []
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=executable, headless=True)
    tab = browser.new_page(viewport={"width": 1280, "height": 900})
    tab.on(
      "console",
      lambda m: errors.append(m.text) if m.type == "error" else None,
    )
    tab.on("pageerror", lambda e: errors.append(str(e)))
    tab.goto((workdir / "report.html").as_uri())
    tab.wait_for_function("document.documentElement.dataset.ready === '1'")
    yield workdir, tab
    # Every thumbnail on the page loaded (none is referenced that is absent).
    broken = tab.evaluate(
      "[...document.images].filter(i => i.complete && !i.naturalWidth)"
      ".map(i => i.src)"
    )
    browser.close()
  assert not errors, errors
  assert not broken, broken


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
