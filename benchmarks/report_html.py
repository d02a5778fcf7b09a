r"""report.html with N synthetic records: write time, size, load-to-interactive.

    python benchmarks/report_html.py [--n 50000] [--runs 6] [--gallery 50]
        [--repeats 5] [--page DIR/report.html ...] [--keep DIR]

Writes --runs fake evaluations of the same --n samples (records chunks of
10,000, meta.json with 1,000 class names, and the gallery chunks the
evaluation's default selection keeps: `report.gallery.Plan(--gallery)`, fed
batch by batch through `Keeper.take` as the recorder does), then
`report.write_html` of all of them as one group (a grid's page), and opens the
page in headless Chromium (Debian's ``chromium`` through Playwright, a fresh
page per repeat, from disk). Printed per page (medians over the repeats):

  ready ms    navigation start to the end of the page's script (the data
              parsed, the first page of rows in the DOM): load-to-interactive
  load ms     navigation start to the load event (the first page's
              thumbnails decoded)
  filter ms   one cell filter (RR under run 0, RW under run 1) re-rendered
  sort ms     sort by the RMA change between two runs, re-rendered
  page ms     the next page

``--page`` measures existing pages too (e.g. the demo's).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time

import numpy as np

from rationality_jax import files
from rationality_jax import manifest
from rationality_jax import metrics
from rationality_jax import report
from rationality_jax.report import gallery
from rationality_jax.report import records

CHUNK = 10_000
SIZE = 64  # the fake model's input size (pixels)


def fake_run(directory: str, name: str, n: int, seed: int, keep: int) -> None:
  """One evaluation's records, meta.json and gallery chunks."""
  rng = np.random.default_rng(seed)
  label = rng.integers(0, 1000, n)
  correct = rng.random(n) < 0.6 + 0.05 * seed
  prediction = np.where(correct, label, (label + 1) % 1000)
  rma = np.clip(rng.normal(0.5, 0.2, n), 0, 1).astype(np.float32)
  folder = os.path.join(directory, "records", "p0-of-1")
  os.makedirs(folder)
  keeper = gallery.Plan(keep, n, 0.5, "normalize('clip')").keeper()
  image = rng.integers(0, 255, (CHUNK, SIZE, SIZE, 3), np.uint8)
  mask = np.zeros((CHUNK, SIZE, SIZE), np.uint8)
  mask[:, 16:48, 16:48] = 1
  heat = rng.random((CHUNK, SIZE, SIZE), np.float32)
  for c, start in enumerate(range(0, n, CHUNK)):
    part = slice(start, min(start + CHUNK, n))
    m = part.stop - part.start
    columns = {
      "correct": correct[part],
      "rma": rma[part],
      "mask_area": np.full(m, 1024),
      "logits_finite": np.ones(m, bool),
      "heatmap_finite": np.ones(m, bool),
    }
    ids = np.asarray(
      [f"val/{i:06d}.JPEG" for i in range(part.start, part.stop)]
    )
    index = np.arange(part.start, part.stop)
    metrics.Accumulator().add(
      ids=ids,
      index=index,
      label=label[part],
      prediction=prediction[part],
      confidence=rng.random(m).astype(np.float32),
      rra=rma[part],
      pointing_game=np.ones(m, np.float32),
      **columns,
    ).save(os.path.join(folder, f"chunk_{c:06d}.npz"))
    if keeper is not None:
      local = {"image": image[:m], "mask": mask[:m]}
      keeper.take(ids, index, local, columns, np.ones(m, bool), heat[:m])
      keeper.save(os.path.join(folder, f"gallery_{c:06d}.npz"))
  files.write_json(
    os.path.join(directory, "meta.json"),
    {
      "name": name,
      "model": "clip_b16",
      "dataset": "imagenet",
      "split": "validation",
      "method": "zs" if seed == 0 else name,
      "heatmap": "chefer",
      "num_examples": n,
      "class_names": [f"class {i}" for i in range(1000)],
    },
  )
  # Complete, as `Run.complete` leaves it: `report` reads only such runs
  # (and checks every records file's digest: part of write_html's time).
  files.write_json(
    os.path.join(directory, manifest.MANIFEST),
    {
      "status": manifest.COMPLETE,
      "records": records.records_manifest(directory),
    },
  )


def measure(page_path: str, repeats: int, executable: str) -> dict:
  """Median milliseconds of each step (module docstring) in Chromium."""
  from playwright.sync_api import sync_playwright

  steps = {k: [] for k in ("ready", "load", "filter", "sort", "page")}
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=executable, headless=True)
    for _ in range(repeats):
      tab = browser.new_page(viewport={"width": 1280, "height": 900})
      errors = []
      tab.on("pageerror", lambda e, errors=errors: errors.append(str(e)))
      tab.goto("file://" + os.path.abspath(page_path), wait_until="load")
      tab.wait_for_function("document.documentElement.dataset.ready === '1'")
      steps["ready"].append(tab.evaluate("window.reportReady"))
      steps["load"].append(
        tab.evaluate(
          "performance.getEntriesByType('navigation')[0].loadEventEnd"
        )
      )
      runs = tab.eval_on_selector_all("select[data-run]", "s => s.length")
      tab.select_option("#cell-0", "RR")
      if runs > 1:
        tab.select_option("#cell-1", "RW")
      steps["filter"].append(tab.evaluate("window.lastUpdateMs"))
      tab.select_option("#cell-0", "any")
      if runs > 1:
        tab.select_option("#cell-1", "any")
        tab.select_option("#sort-b", "1")
      tab.select_option("#sort", "delta")
      steps["sort"].append(tab.evaluate("window.lastUpdateMs"))
      tab.locator("button.next").first.click()
      steps["page"].append(tab.evaluate("window.lastUpdateMs"))
      assert not errors, errors
      tab.close()
    browser.close()
  return {k: statistics.median(v) for k, v in steps.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--n", type=int, default=50_000)
  parser.add_argument("--runs", type=int, default=6)
  parser.add_argument("--gallery", type=int, default=50)
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--page", action="append", default=[])
  parser.add_argument("--keep", default="", help="write the fake runs here")
  args = parser.parse_args()
  executable = shutil.which("chromium") or shutil.which("chromium-browser")
  if not executable:
    raise SystemExit("chromium is not installed (apt-get install -y chromium)")
  pages = list(args.page)
  workdir = args.keep or tempfile.mkdtemp(prefix="report_html_")
  rows = []
  if args.n:
    start = time.perf_counter()
    run_dirs = []
    for r in range(args.runs):
      run_dirs.append(os.path.join(workdir, "eval", f"m{r}"))
      fake_run(run_dirs[-1], f"m{r}", args.n, r, args.gallery)
    made = time.perf_counter() - start
    start = time.perf_counter()
    pages.insert(0, report.write_html(run_dirs, workdir, title="benchmark"))
    wrote = time.perf_counter() - start
    print(f"fake records: {made:.1f} s; write_html: {wrote:.1f} s")
  for page in pages:
    gallery_dir = os.path.join(os.path.dirname(page), "gallery")
    thumbs = [
      os.path.join(d, f) for d, _, fs in os.walk(gallery_dir) for f in fs
    ]
    size = sum(os.path.getsize(f) for f in thumbs)
    times = measure(page, args.repeats, executable)
    rows.append((page, os.path.getsize(page), len(thumbs), size, times))
  print(
    "| page | html MB | thumbnails (MB) | ready ms | load ms | filter ms "
    "| sort ms | page ms |"
  )
  print("|---|---|---|---|---|---|---|---|")
  for page, html_bytes, count, size, t in rows:
    print(
      f"| {page} | {html_bytes / 1e6:.2f} | {count} ({size / 1e6:.1f}) "
      f"| {t['ready']:.0f} | {t['load']:.0f} | {t['filter']:.1f} "
      f"| {t['sort']:.1f} | {t['page']:.1f} |"
    )
  if not args.keep:
    shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
  main()
