"""What a finished evaluation writes from its records, and its check on rerun.

  summary, names = outputs.finalise(run_dir, threshold=0.5)  # process 0

The records are the truth: summary.json, records.csv, report.md,
results.csv/json, report.html (with gallery/) and the PT/IR figure are all
made from them, so a rerun can always make them again; the manifest
(`record`) lists each with its digest (the gallery's thumbnails are drawn
from the records' gallery chunks, which it lists), and every records chunk
with its digest and number of examples (`report.records.records_manifest`,
checked by `report.records.check` before anything reads them back).
"""

from __future__ import annotations

import csv
import io
import os

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax import report
from rationality_jax.report import records
from rationality_jax.run import recorder

META = report.META
SUMMARY = "summary.json"
RECORDS_CSV = "records.csv"
FIGURE = "pt_ir_threshold.png"
# records.csv's columns, those a run recorded in this order.
CSV_COLUMNS = (
  "ids",
  *records.INT_COLUMNS,
  "correct",
  "rma",
  "confidence",
  "rra",
  "pointing_game",
  "mask_area",
  "heatmap_mass",
  "heatmap_std",
  *recorder.FLAG_COLUMNS,
  "deletion_auc",
  "insertion_auc",
)


def _cell(name: str, value) -> str:
  if name == "ids":
    return str(value)
  if name in records.INT_COLUMNS or name in ("mask_area", "correct"):
    return str(int(value))
  if name in recorder.FLAG_COLUMNS:
    return str(int(bool(value)))
  return f"{value:.6g}"


def write_csv(out_dir: str, loaded: metrics.Accumulator) -> None:
  """records.csv: a row per sample (the csv module quotes an id with a comma
  or a quote, so no id shifts the columns)."""
  arrays = loaded.arrays()
  columns = [c for c in CSV_COLUMNS if c in arrays]
  buffer = io.StringIO()
  writer = csv.writer(buffer, lineterminator="\n")
  writer.writerow(["id" if c == "ids" else c for c in columns])
  for row in zip(*(arrays[c] for c in columns)):
    writer.writerow([_cell(name, value) for name, value in zip(columns, row)])
  files.write_text(os.path.join(out_dir, RECORDS_CSV), buffer.getvalue())


def finalise(
  out_dir: str, threshold: float = 0.5, title: str = "", figures: bool = True
) -> tuple[dict, list[str]]:
  """Writes every output of a finished run from its records (process 0).

  Returns:
    (the summary, the outputs' names relative to `out_dir`).
  """
  with records.unverified(out_dir):  # complete once these are written
    return _finalise(out_dir, threshold, title, figures)


def _finalise(out_dir, threshold, title, figures) -> tuple[dict, list[str]]:
  loaded = records.load(out_dir)
  summary = records.summarise_records(
    loaded, threshold, **records.policies(out_dir)
  )
  files.write_json(os.path.join(out_dir, SUMMARY), summary)
  write_csv(out_dir, loaded)
  names = [META, SUMMARY, RECORDS_CSV]
  rows = report.collect([out_dir], threshold, loaded={out_dir: loaded})
  figure_paths = []
  if figures:
    figure_paths.append(
      report.figure_threshold_curves([out_dir], os.path.join(out_dir, FIGURE))
    )
    names.append(FIGURE)
  meta = files.read_json(os.path.join(out_dir, META))
  title = title or f"Run {meta.get('name', '')}"
  page = report.write_html(
    [out_dir], out_dir, threshold=threshold, title=title, rows=rows
  )
  paths = report.write(
    rows, out_dir, title=title, figures=figure_paths, page=page
  )
  names += [os.path.basename(p) for p in (*paths.values(), page)]
  return summary, names


def expected_examples(out_dir: str) -> int:
  """The examples the run's records must hold (its meta.json)."""
  return int(files.read_json(os.path.join(out_dir, META))["num_examples"])
