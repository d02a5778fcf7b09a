r"""report.html: every prediction and its evidence in one self-contained page.

  path = report.write_html(run_dirs, out_dir, threshold=0.5, title="Results")

One HTML file (the data as JSON, the script and style inline; no network)
and, beside it, ``gallery/``: a thumbnail per kept sample (the image with
its mask's outline, `gallery`) and per run (the heatmap over it). A row per
sample, a column per run of the same model and dataset split: the
prediction, RMA, cell (RR/RW/WR/WW) and confidence of each; filters by
cell per run ("RR under zs, RW under ft"), class, id, thumbnails; sorting
by split order, RMA, RMA change between two runs, confidence; pages of 25 to
200 rows, so 50,000 samples stay fast. The ZS -> method transition matrices
(`samples.transitions`) head each group; a click on a count lists its
samples. The state is kept in the URL's #fragment (a link reopens a view).

Every number comes from the records (`samples`); the thumbnails from the
records' gallery chunks (`gallery`), written by the evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence
import json
import os
import re
import shutil

import numpy as np

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax.report import gallery
from rationality_jax.report import records as records_lib
from rationality_jax.report import samples

PAGE = "report.html"
GALLERY = "gallery"
EXTENSION = "png"
_ASSETS = os.path.dirname(__file__)  # page.html, page.css, page.js


def _slug(text: str) -> str:
  return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_")[:60] or "x"


def _flags(values: np.ndarray) -> str:
  """[m] bool -> '0101...'."""
  return (np.asarray(values, np.uint8) + 48).tobytes().decode()


def _milli(values: np.ndarray) -> list:
  """[m] float -> thousandths as ints, None where not finite."""
  values = np.asarray(values, np.float64)
  scaled = np.round(values * 1000)
  return [
    int(v) if f else None
    for v, f in zip(scaled.tolist(), np.isfinite(values).tolist())
  ]


def _summary(run: samples.Run, threshold: float, rows) -> dict:
  """The run's report row (when `rows` has its only one) or its summary."""
  mine = [r for r in rows if r.get("run_dir") == run.run_dir]
  if len(mine) == 1 and mine[0].get("threshold") == threshold:
    s = mine[0]
  else:
    acc = metrics.Accumulator.from_arrays(run.arrays)
    s = records_lib.summarise_records(
      acc, threshold, **records_lib.policies(run.run_dir)
    )
  keys = ("n", "accuracy", "pt", "ir", "rr", "rw", "wr", "ww", "undefined")
  return {
    k: (None if isinstance(s[k], float) and not np.isfinite(s[k]) else s[k])
    for k in keys
  }


def _draw_gallery(group: samples.Group, g_dir: str, r_dirs, folder: str):
  """Writes the group's thumbnails under `folder`; returns ([m] image
  flags, per run [m] overlay flags)."""
  row_of = {sample_id: row for row, sample_id in enumerate(group.ids.tolist())}
  has_image = np.zeros(len(group.ids), bool)
  has_thumb = [np.zeros(len(group.ids), bool) for _ in group.runs]
  for r, run in enumerate(group.runs):
    mine = set(run.ids.tolist())
    for chunk in gallery.chunks(run.run_dir):
      for k, sample_id in enumerate(chunk["ids"].tolist()):
        row = row_of.get(sample_id)
        if row is None or sample_id not in mine or has_thumb[r][row]:
          continue
        image, mask = chunk["image"][k], chunk["mask"][k]
        name = f"{row}.{EXTENSION}"
        gallery.write_image(
          os.path.join(folder, g_dir, r_dirs[r], name),
          gallery.draw(image, mask, chunk["heatmap"][k]),
        )
        has_thumb[r][row] = True
        if not has_image[row]:
          path = os.path.join(folder, g_dir, name)
          gallery.write_image(path, gallery.draw(image, mask))
          has_image[row] = True
  return has_image, has_thumb


def _group_data(
  group: samples.Group, k: int, folder: str, threshold: float, rows
) -> dict:
  """One group's columns (on the group's rows) and its thumbnails."""
  g_dir = _slug(f"{k}-{group.model}-{group.dataset}-{group.split}")
  r_dirs = [_slug(f"{r}-{run.name}") for r, run in enumerate(group.runs)]
  has_image, has_thumb = _draw_gallery(group, g_dir, r_dirs, folder)
  classes = next(
    (
      run.meta["class_names"] for run in group.runs if "class_names" in run.meta
    ),
    None,
  )
  runs = []
  for r, run in enumerate(group.runs):
    a = run.arrays
    cell = samples.column(group, r, run.cells.astype(np.int16), -3)
    n = len(a["correct"])
    prediction = a.get("prediction", np.where(a["correct"], a["label"], -1))
    confidence = a.get("confidence", np.full(n, np.nan))
    runs.append(
      {
        "name": run.name,
        "method": run.meta.get("method", ""),
        "heatmap": run.meta.get("heatmap", ""),
        "dir": r_dirs[r],
        "summary": _summary(run, threshold, rows),
        "cell": (cell + 48).astype(np.uint8).tobytes().decode(),
        "pred": samples.column(group, r, prediction.astype(np.int64), -2)
        .astype(int)
        .tolist(),
        "rma": _milli(samples.column(group, r, a["rma"], np.nan)),
        "conf": _milli(samples.column(group, r, confidence, np.nan)),
        "thumb": _flags(has_thumb[r]),
      }
    )
  index_of = {id(run): r for r, run in enumerate(group.runs)}
  return {
    "model": group.model,
    "dataset": group.dataset,
    "split": group.split,
    "title": group.title,
    "dir": g_dir,
    "classes": None if classes is None else [str(c) for c in classes],
    "ids": group.ids.tolist(),
    "index": group.index.tolist(),
    "label": group.label.tolist(),
    "image": _flags(has_image),
    "runs": runs,
    "transitions": [
      {
        "from": index_of[id(base)],
        "to": index_of[id(run)],
        "matrix": matrix.tolist(),
      }
      for base, run, matrix in samples.transitions(group)
    ],
  }


def _about(threshold: float, groups) -> str:
  kept = sum(
    1 for g in groups for run in g["runs"] for f in run["thumb"] if f == "1"
  )
  return (
    f"A row per sample, a column per run of the same model and dataset. "
    f"Valid evidence: RMA >= {threshold}. RR right for the right reason, RW "
    "right with invalid evidence, WR wrong with valid evidence, WW wrong "
    "with invalid evidence; PT = RR / (RR + RW), IR = RR / (RR + WR). "
    "Confidence: the softmax probability of the prediction. Heatmap "
    "thumbnails (the mask's outline in white) exist for the samples the "
    f"evaluation kept ({kept} here: evaluate.gallery_images spread over the "
    "split and the first of each cell; -1 keeps every one)."
  )


def render(payload: dict, title: str) -> str:
  """The page: the template with its style, script and data inlined."""

  def asset(name: str) -> str:
    with open(os.path.join(_ASSETS, name), encoding="utf-8") as f:
      return f.read()

  data = json.dumps(payload, separators=(",", ":"), allow_nan=False)
  # Nothing in the data may close the script element it sits in.
  data = data.replace("<", "\\u003c").replace(">", "\\u003e")
  escaped = (
    title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
  )
  text = asset("page.html")
  for key, value in (
    ("__CSS__", asset("page.css")),
    ("__TITLE__", escaped),
    ("__JS__", asset("page.js")),
  ):
    text = text.replace(key, value)
  return text.replace("__DATA__", data)


def write_html(
  run_dirs: Sequence[str],
  out_dir: str,
  *,
  threshold: float = 0.5,
  title: str = "Results",
  groups: Sequence[samples.Group] | None = None,
  rows: Sequence[dict] = (),
) -> str:
  """Writes ``out_dir/report.html`` and ``out_dir/gallery/``; returns the
  page's path. `groups`: `samples.group_runs(run_dirs, threshold)` when
  already made (the grid's report.md uses them too); `rows`: the runs'
  `collect` rows when already made (else each run is summarised here)."""
  if groups is None:
    groups = samples.group_runs(run_dirs, threshold)
  target = os.path.join(out_dir, GALLERY)
  staging = os.path.join(out_dir, f".{GALLERY}.tmp{os.getpid()}")
  shutil.rmtree(staging, ignore_errors=True)
  os.makedirs(staging)
  try:
    data = [
      _group_data(g, k, staging, threshold, rows) for k, g in enumerate(groups)
    ]
    payload = {
      "title": title,
      "threshold": threshold,
      "cells": list(gallery.CELLS),
      "ext": EXTENSION,
      "about": _about(threshold, data),
      "groups": data,
    }
    shutil.rmtree(target, ignore_errors=True)
    os.replace(staging, target)
  finally:
    shutil.rmtree(staging, ignore_errors=True)
  path = os.path.join(out_dir, PAGE)
  files.write_text(path, render(payload, title))
  return path
