"""A report's files: report.md, results.csv and results.json, written atomically.

report.write(rows, out_dir, published=report.PUBLISHED, figures=[...])
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
import csv
import io
import json
import os

from rationality_jax import files
from rationality_jax.report import rows as rows_lib
from rationality_jax.report import statistics
from rationality_jax.report import tables
from rationality_jax.report.rows import FIELDS

# Columns of results.csv besides the summary's `FIELDS`.
EXTRA_FIELDS = (
  *(f"{s}_ci" for s in statistics.STATISTICS),
  *(f"{s}_vs_zs" for s in statistics.STATISTICS),
  "uniform_map_rma",
  "uniform_map_valid",
  "group",
  "seed",
  "trained",
  "faithfulness_fill",
)


def write(
  rows: Sequence[dict],
  out_dir: str,
  *,
  title: str = "Results",
  published: Mapping | None = None,
  figures: Sequence[str] = (),
  notes: str = "",
  failures: Sequence[Mapping] = (),
  settings: Sequence[str] = (),
  sections: Sequence[tuple[str, str]] = (),
  page: str = "",
) -> dict[str, str]:
  """Writes report.md, results.csv and results.json to `out_dir` (atomically).

  Args:
    rows: `collect` rows.
    published: the study's values (`PUBLISHED`) to set beside ours.
    figures: PNG paths to link.
    notes: a paragraph under the title.
    failures: [{name, stage, error}] of cells that failed: listed, and shown
      as missing ("failed") in the tables.
    settings: lines describing the preset and every option that differs
      from the default.
    sections: further (heading, markdown) sections, after the tables.
    page: the path of report.html, linked under the title ('' none).

  Returns:
    {file name: path}.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = {
    name: os.path.join(out_dir, name)
    for name in ("report.md", "results.csv", "results.json")
  }
  files.write_text(
    paths["results.json"], results_json(rows, failures, published)
  )
  files.write_text(paths["results.csv"], results_csv(rows))
  body = [*_head(rows, title, notes, settings, failures)]
  if page:
    link = os.path.relpath(page, out_dir)
    body[2:2] = [
      f"Every prediction and its evidence, sample by sample (thumbnails, "
      f"filters by cell, class and method, sorting by RMA, RMA change and "
      f"confidence): [{link}]({link}).",
      "",
    ]
  body += _tables(rows, published, failures)
  for heading, text in sections:
    body += [f"## {heading}", "", text, ""]
  if figures:
    body += ["## Figures", ""]
    body += [
      f"![{os.path.basename(p)}]({os.path.relpath(p, out_dir)})"
      for p in figures
    ]
    body.append("")
  files.write_text(paths["report.md"], "\n".join(body))
  return paths


def _threshold(rows: Sequence[dict]) -> float:
  return rows[0]["threshold"] if rows else 0.5


def results_json(rows, failures=(), published: Mapping | None = None) -> str:
  """results.json: the threshold, the rows, the failed cells, the study's values."""
  return json.dumps(
    {
      "threshold": _threshold(rows),
      "rows": list(rows),
      "failed": list(failures),
      "published": None
      if published is None
      else [
        dict(zip(("metric", "method", "model", "dataset"), k), value=v)
        for k, v in published.items()
      ],
    },
    indent=1,
    default=str,
  )


def results_csv(rows) -> str:
  """results.csv: a row per run, the `FIELDS` and its directory."""
  buffer = io.StringIO()
  writer = csv.DictWriter(
    buffer,
    fieldnames=[*FIELDS, *EXTRA_FIELDS, "run_dir"],
    extrasaction="ignore",
  )
  writer.writeheader()
  for row in rows:  # intervals as JSON arrays, one cell each
    writer.writerow(
      {k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()}
    )
  return buffer.getvalue()


def _head(rows, title, notes, settings, failures) -> list[str]:
  """The title, how to read the numbers, the notes, settings and failures."""
  threshold = _threshold(rows)
  parts = [
    f"# {title}",
    "",
    f"Validity threshold {threshold}: a sample has valid evidence when RMA >= "
    f"{threshold}. PT = RR / (RR + RW), IR = RR / (RR + WR); all values in %; "
    "RMA, RRA and PG (pointing game) are means over the samples.",
    "",
    "Brackets are 95% percentile bootstrap intervals over the samples "
    f"({statistics.RESAMPLES} resamples, seeded): a difference between two "
    "runs is real only where it is larger than their spread, and the paired "
    "table below compares each run with the zero-shot run on the same "
    "images (a * in Tables 1-2 marks a difference from ZS whose interval "
    "excludes 0). The chance levels say what a uniform map would score on "
    "the same masks: a mean RMA near its uniform-map RMA, or a PT near the "
    "share of samples a uniform map already makes valid, says more about "
    "the masks than about the model.",
    "",
  ]
  if notes:
    parts += [notes, ""]
  if settings:
    parts += ["## Settings", "", *(f"- {line}" for line in settings), ""]
  if failures:
    parts += [
      "## Failed cells",
      "",
      f"{len(failures)} cell(s) failed; they are missing from every table "
      "and average below.",
      "",
      tables.failed_table(failures),
      "",
    ]
  return parts


def _tables(rows, published, failures) -> list[str]:
  """Every run, the undefined samples, and the per-metric tables."""
  parts = ["## All runs", "", tables.long_table(rows), ""]
  flagged = [(r, w) for r in rows for w in r.get("warnings", [])]
  if flagged:
    parts += ["## Warnings", ""]
    parts += [f"- {rows_lib.label(r)}: {w}" for r, w in flagged]
    parts.append("")
  paired = tables.paired_table(rows)
  if paired:
    parts += [
      "## Against zero-shot, paired on the same images",
      "",
      "Differences in percentage points, 95% paired bootstrap intervals.",
      "",
      paired,
      "",
    ]
  faithfulness = tables.faithfulness_table(rows)
  if faithfulness:
    parts += [
      "## Faithfulness: deletion and insertion",
      "",
      "Mean areas under the class probability's deletion curve (most "
      "relevant pixels removed first: lower is better) and insertion curve "
      "(higher is better). Fill: what replaced the removed pixels, RISE's "
      "baselines (zeros for deletion, a blur for insertion) or ROAD's noisy "
      "linear imputation from the kept pixels (Rong et al. 2022); areas "
      "under different fills do not compare.",
      "",
      faithfulness,
      "",
    ]
  seeds = tables.seeds_table(rows)
  if seeds:
    parts += [
      "## Seeds",
      "",
      "Cells trained with several seeds: mean ± standard deviation over the "
      "seeds, and the 95% interval of all their samples pooled.",
      "",
      seeds,
      "",
    ]
  chance = tables.chance_table(rows)
  if chance:
    parts += ["## Chance levels: a uniform map", "", chance, ""]
  if any(
    int(r["n"]) != sum(int(r[k]) for k in ("rr", "rw", "wr", "ww"))
    or r.get("skipped")
    for r in rows
  ):
    parts += [
      "## Undefined and skipped samples",
      "",
      "Samples outside RR/RW/WR/WW (no PT/IR without a defined evidence "
      "and prediction), by reason, and examples the dataset build skipped.",
      "",
      tables.undefined_table(rows),
      "",
    ]
  legend = "Cells: ours / paper (ours - paper), percentage points."
  failed_cells = {
    (f.get("method"), f.get("model"), f.get("dataset")) for f in failures
  }
  for metric, name in (
    ("pt", "Prediction trustworthiness (PT, %), the study's Table 1"),
    ("ir", "Inference reliability (IR, %), the study's Table 2"),
    ("accuracy", "Accuracy (%)"),
  ):
    paper = published if metric in ("pt", "ir") else None
    parts += [f"## {name}", ""]
    if paper is not None:
      parts += [legend, ""]
    parts += [tables.metric_table(rows, metric, paper, failed=failed_cells), ""]
  return parts
