r"""Reports of evaluated runs: tables like the study's Tables 1-2, and figures.

    rows = report.collect(run_dirs)                   # from the per-sample records
    report.write(rows, out_dir, published=report.PUBLISHED)   # md + csv + json
    report.figure_threshold_curves(run_dirs, "pt_ir_threshold.png")
    report.figure_heatmaps(run_dirs, images, masks, ids, "heatmaps.png")
    report.figure_corruptions(rows, "corruptions.png")

Every number comes from the records of `rationality_jax.run.evaluate` (no model
runs here), so a report can be rebuilt at another validity threshold:
`collect(run_dirs, threshold=0.3)`.

Layout. `report.md` holds one long table (a row per run: accuracy, PT, IR,
mean RMA, RRA, pointing game, the counts RR/RW/WR/WW, n) and, like the study,
one table per metric (PT, IR, accuracy) with a row per method and a column
per (model, dataset), plus the average over the columns. With `published`
(the `paper` preset) each cell of the PT and IR tables reads
``ours / paper (ours - paper)`` in percentage points.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
import csv
import io
import json
import os
import re

import numpy as np

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax.report import records as records_lib

# Dataset and model keys of the study's tables, in its column order.
PAPER_DATASETS = ("imagenet", "caltech101", "dogs", "cub")
PAPER_MODELS = ("albef_b16", "blip_b16", "clip_b16", "clip_b32")

_PT = {  # Table 1 (PT, %): method -> model -> (IN-1K, Caltech, Dogs, CUB)
  "zs": {
    "albef_b16": (90.61, 76.28, 95.02, 49.31),
    "blip_b16": (89.01, 61.72, 93.95, 23.93),
    "clip_b16": (87.05, 62.99, 92.96, 29.38),
    "clip_b32": (89.39, 73.44, 94.58, 30.57),
  },
  "lp": {
    "albef_b16": (82.37, 59.08, 90.30, 19.91),
    "blip_b16": (80.36, 52.57, 92.63, 12.98),
    "clip_b16": (80.65, 56.40, 92.19, 36.17),
    "clip_b32": (84.05, 68.22, 92.76, 35.89),
  },
  "flcp": {
    "albef_b16": (87.07, 62.43, 92.68, 64.33),
    "blip_b16": (82.57, 59.52, 91.46, 36.17),
    "clip_b16": (81.40, 64.32, 76.44, 16.56),
    "clip_b32": (85.48, 71.29, 91.59, 23.84),
  },
  "ft": {
    "albef_b16": (86.28, 48.97, 92.22, 24.98),
    "blip_b16": (85.54, 39.96, 93.13, 25.85),
    "clip_b16": (82.98, 56.86, 91.60, 27.98),
    "clip_b32": (86.29, 80.01, 94.17, 55.43),
  },
}
_IR = {  # Table 2 (IR, %)
  "zs": {
    "albef_b16": (48.95, 76.74, 30.56, 16.43),
    "blip_b16": (49.65, 90.05, 33.87, 18.92),
    "clip_b16": (66.33, 85.58, 61.96, 68.05),
    "clip_b32": (61.09, 85.23, 56.12, 56.80),
  },
  "lp": {
    "albef_b16": (74.76, 92.56, 66.21, 55.46),
    "blip_b16": (74.78, 90.89, 65.11, 59.91),
    "clip_b16": (78.93, 95.05, 75.41, 77.08),
    "clip_b32": (74.91, 93.76, 68.53, 67.37),
  },
  "flcp": {
    "albef_b16": (78.54, 96.81, 78.36, 80.92),
    "blip_b16": (80.04, 94.93, 78.73, 73.40),
    "clip_b16": (75.00, 94.84, 80.21, 77.97),
    "clip_b32": (71.84, 95.46, 76.43, 73.87),
  },
  "ft": {
    "albef_b16": (82.95, 94.41, 81.93, 81.87),
    "blip_b16": (82.86, 91.55, 79.18, 85.26),
    "clip_b16": (83.25, 90.66, 82.06, 81.12),
    "clip_b32": (79.34, 93.86, 73.22, 72.72),
  },
}
# The study's published PT and IR (%), keyed (metric, method, model, dataset).
PUBLISHED: dict[tuple[str, str, str, str], float] = {
  (metric, method, model, dataset): value
  for metric, table in (("pt", _PT), ("ir", _IR))
  for method, by_model in table.items()
  for model, values in by_model.items()
  for dataset, value in zip(PAPER_DATASETS, values)
}

FIELDS = (
  "name",
  "model",
  "dataset",
  "method",
  "heatmap",
  "corruption",
  "severity",
  "n",
  "accuracy",
  "pt",
  "ir",
  "mean_rma",
  "mean_rra",
  "mean_pointing_game",
  "rr",
  "rw",
  "wr",
  "ww",
  "undefined",
  *(f"undefined_{reason}" for reason in metrics.REASONS),
  "skipped",
  "threshold",
)
# Why a sample is outside RR/RW/WR/WW (summary keys of `metrics.Accumulator`).
UNDEFINED_REASONS = {
  "undefined_nonfinite_logits": "non-finite logits",
  "undefined_nonfinite_heatmap": "non-finite heatmap",
  "undefined_empty_mask": "empty mask",
  "undefined_nonfinite_rma": "non-finite RMA",
}
META = records_lib.META
_SEVERITY = re.compile(r"^[a-z_]+/([1-5])/")
PERCENT = ("accuracy", "pt", "ir", "mean_rma", "mean_rra", "mean_pointing_game")


# ------------------------------------------------------------------ rows ----


def collect(
  run_dirs: Iterable[str],
  threshold: float = 0.5,
  loaded: Mapping[str, metrics.Accumulator] | None = None,
) -> list[dict]:
  """One row per evaluated run: its meta.json fields and its summary.

  A run on a corruption (meta ``corruption`` set, ImageNet-C ids
  ``<corruption>/<severity>/<image>``) gives one row per severity.
  ``loaded``: records already read, by run directory (else read here).
  """
  rows = []
  for run_dir in run_dirs:
    meta = files.read_json(os.path.join(run_dir, META))
    policy = records_lib.policies(run_dir)
    records = (loaded or {}).get(run_dir)
    if records is None:
      records = records_lib.load(run_dir)
    parts = [(meta.get("severity", 0), records)]
    if meta.get("corruption"):
      arrays = records.arrays()
      severity = np.asarray([_severity(i) for i in arrays["ids"]])
      if (severity > 0).all():
        parts = [
          (
            int(s),
            metrics.Accumulator.from_arrays(
              {k: v[severity == s] for k, v in arrays.items()}
            ),
          )
          for s in np.unique(severity)
        ]
    for severity, part in parts:
      summary = records_lib.summarise_records(part, threshold, **policy)
      row = {field: meta.get(field, "") for field in FIELDS[:7]}
      row["severity"] = severity
      row.update(
        {field: summary.get(field, float("nan")) for field in FIELDS[7:]}
      )
      row["skipped"] = meta.get("skipped", {})
      row["run_dir"] = run_dir
      rows.append(row)
  return rows


def _severity(sample_id: str) -> int:
  match = _SEVERITY.match(sample_id)
  return int(match.group(1)) if match else 0


def _columns(rows) -> list[tuple[str, str]]:
  """(model, dataset) pairs in first-seen order (the study's order when present)."""
  seen = []
  for row in rows:
    key = (row["model"], row["dataset"])
    if key not in seen:
      seen.append(key)
  order = {
    k: i
    for i, k in enumerate((m, d) for m in PAPER_MODELS for d in PAPER_DATASETS)
  }
  return sorted(seen, key=lambda k: order.get(k, len(order) + seen.index(k)))


def _fmt(value, percent=True) -> str:
  if value is None or (isinstance(value, float) and np.isnan(value)):
    return "-"
  return f"{100 * value:.2f}" if percent else f"{value}"


def metric_table(
  rows: Sequence[dict],
  metric: str,
  published: Mapping | None = None,
  failed: Iterable[tuple] = (),
) -> str:
  """Markdown: a row per method, a column per (model, dataset), and the average.

  Only rows without a corruption enter (ImageNet-C has its own figure).
  With `published`, cells read ``ours / paper (diff)`` and the average is
  taken over the same cells on both sides: those where both values exist.
  A missing cell reads "-" ("failed" when its run failed) and never enters
  one side's mean only; the average says over how many cells it runs when
  that is not all of them.

  Args:
    failed: (method, model, dataset) of failed cells.
  """
  failed = set(failed)
  rows = [r for r in rows if not r.get("corruption")]
  columns = _columns(
    list(rows) + [dict(model=m, dataset=d) for _, m, d in failed if m]
  )
  methods = list(
    dict.fromkeys([r["method"] for r in rows] + [f[0] for f in failed if f[0]])
  )
  header = ["method", *(f"{m} {d}" for m, d in columns), "avg"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  with_paper = published is not None
  for method in methods:
    cells, pairs = [method], []
    for model, dataset in columns:
      match = [
        r
        for r in rows
        if (r["method"], r["model"], r["dataset"]) == (method, model, dataset)
      ]
      value = float(match[0][metric]) if match else float("nan")
      paper = (published or {}).get((metric, method, model, dataset))
      if (method, model, dataset) in failed and not match:
        cells.append("failed")
      else:
        cells.append(_cell(value, paper, with_paper))
      if not np.isnan(value) and (paper is not None or not with_paper):
        pairs.append((value, paper))
    if pairs:
      mean = float(np.mean([v for v, _ in pairs]))
      paper_mean = float(np.mean([p for _, p in pairs])) if with_paper else None
      text = _cell(mean, paper_mean, with_paper)
      if len(pairs) < len(columns):
        text += f" ({len(pairs)}/{len(columns)} cells)"
    else:
      text = "-"
    cells.append(text)
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _cell(value, paper, with_paper) -> str:
  if not with_paper:
    return _fmt(value)
  if paper is None:
    return f"{_fmt(value)} / -"
  diff = 100 * value - paper if not np.isnan(value) else float("nan")
  return (
    f"{_fmt(value)} / {paper:.2f} ({diff:+.2f})"
    if not np.isnan(diff)
    else f"- / {paper:.2f}"
  )


def long_table(rows: Sequence[dict]) -> str:
  """Markdown: a row per run with every metric (%, counts as integers)."""
  header = [
    "run",
    "method",
    "model",
    "dataset",
    "heatmap",
    "accuracy",
    "PT",
    "IR",
    "RMA",
    "RRA",
    "PG",
    "RR",
    "RW",
    "WR",
    "WW",
    "n",
  ]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    cells = [
      r["name"],
      r["method"],
      r["model"],
      r["dataset"],
      r["heatmap"],
      *(_fmt(r[k]) for k in PERCENT),
      *(str(int(r[k])) for k in ("rr", "rw", "wr", "ww", "n")),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def undefined_table(rows: Sequence[dict]) -> str:
  """Markdown: per run, the samples outside RR/RW/WR/WW and why.

  Empty masks (the object is outside the crop or has no pixel), non-finite
  heatmaps and non-finite logits leave a sample undefined; examples the
  dataset build skipped (unreadable images) never reach the evaluation.
  """
  header = ["run", "n", "RR+RW+WR+WW", *UNDEFINED_REASONS.values(), "skipped"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    counted = sum(int(r[k]) for k in ("rr", "rw", "wr", "ww"))
    cells = [
      r["name"],
      str(int(r["n"])),
      str(counted),
      *(str(int(r.get(k, 0) or 0)) for k in UNDEFINED_REASONS),
      _skipped(r.get("skipped")),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def _skipped(skipped) -> str:
  if not skipped:
    return "0"
  if isinstance(skipped, Mapping):
    return ", ".join(f"{v} {k}" for k, v in sorted(skipped.items()))
  return str(skipped)


def failed_table(failures: Sequence[Mapping]) -> str:
  """Markdown: the cells that failed, each with its one-line error."""
  lines = ["| cell | stage | error |", "|---|---|---|"]
  for f in failures:
    error = str(f["error"]).replace("|", "\\|").replace("\n", " ")
    lines.append(f"| {f['name']} | {f['stage']} | {error} |")
  return "\n".join(lines)


def console_table(
  rows: Sequence[dict], failures: Sequence[Mapping] = ()
) -> str:
  """The console's final table: a line per run (accuracy, PT, IR, counts)."""
  header = ["run", "accuracy", "PT", "IR", "RR", "RW", "WR", "WW", "n"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for r in rows:
    label = r["name"] + (f" s{r['severity']}" if r.get("corruption") else "")
    cells = [
      label,
      *(_fmt(r[k]) for k in ("accuracy", "pt", "ir")),
      *(str(int(r[k])) for k in ("rr", "rw", "wr", "ww", "n")),
    ]
    lines.append("| " + " | ".join(cells) + " |")
  for f in failures:
    lines.append(f"| {f['name']} | failed | | | | | | | |")
  return "\n".join(lines)


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

  Returns:
    {file name: path}.
  """
  os.makedirs(out_dir, exist_ok=True)
  paths = {
    name: os.path.join(out_dir, name)
    for name in ("report.md", "results.csv", "results.json")
  }
  threshold = rows[0]["threshold"] if rows else 0.5
  files.write_text(
    paths["results.json"],
    json.dumps(
      {
        "threshold": threshold,
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
    ),
  )
  buffer = io.StringIO()
  writer = csv.DictWriter(
    buffer, fieldnames=[*FIELDS, "run_dir"], extrasaction="ignore"
  )
  writer.writeheader()
  writer.writerows(rows)
  files.write_text(paths["results.csv"], buffer.getvalue())
  parts = [
    f"# {title}",
    "",
    f"Validity threshold {threshold}: a sample has valid evidence when RMA >= "
    f"{threshold}. PT = RR / (RR + RW), IR = RR / (RR + WR); all values in %; "
    "RMA, RRA and PG (pointing game) are means over the samples.",
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
      failed_table(failures),
      "",
    ]
  parts += ["## All runs", "", long_table(rows), ""]
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
      undefined_table(rows),
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
    parts += [metric_table(rows, metric, paper, failed=failed_cells), ""]
  for heading, body in sections:
    parts += [f"## {heading}", "", body, ""]
  if figures:
    parts += ["## Figures", ""]
    parts += [
      f"![{os.path.basename(p)}]({os.path.relpath(p, out_dir)})"
      for p in figures
    ]
    parts.append("")
  files.write_text(paths["report.md"], "\n".join(parts))
  return paths


# --------------------------------------------------------- quirk ablation ----

DELTA_METRICS = (("accuracy", "accuracy"), ("pt", "PT"), ("ir", "IR"))


def quirk_deltas(rows: Sequence[dict], pairs: Iterable[Mapping]) -> list[dict]:
  """How much each quirk moves accuracy, PT and IR against its baseline.

  Args:
    rows: `collect` rows (a run's ``name`` is its cell's).
    pairs: {'quirk', 'name' (the cell with the quirk on), 'baseline' (the
      same cell without it), optional 'source' (what the release does, and
      in which file)} per quirk and cell.

  Returns:
    one dict per pair: quirk, name, baseline, source, method, model, dataset, the
    quirk run's accuracy / pt / ir, and d_accuracy / d_pt / d_ir (quirk
    minus baseline, fractions; NaN where either run is missing or the
    metric undefined: a missing run is never a zero).
  """
  by_name = {r["name"]: r for r in rows if not r.get("corruption")}
  out = []
  for pair in pairs:
    run, base = by_name.get(pair["name"]), by_name.get(pair["baseline"])
    known = base or run or {}
    entry = {
      "quirk": pair["quirk"],
      "name": pair["name"],
      "baseline": pair["baseline"],
      "source": pair.get("source", ""),
      **{k: known.get(k, "") for k in ("method", "model", "dataset")},
    }
    for metric, _ in DELTA_METRICS:
      value = float(run[metric]) if run else float("nan")
      entry[metric] = value
      entry[f"d_{metric}"] = (
        value - float(base[metric]) if run and base else float("nan")
      )
    out.append(entry)
  return out


def _signed(value: float) -> str:
  return "-" if np.isnan(value) else f"{100 * value:+.2f}"


def quirk_table(deltas: Sequence[dict], metric: str) -> str:
  """Markdown: a row per quirk, a column per baseline cell, and the average.

  Cells are the quirk's change of `metric` in percentage points; "n/a"
  where the quirk does not apply to the cell (the release never did it
  there), "-" where a run is missing or the metric undefined (never
  counted as 0). The average runs over the cells with a value and says
  over how many when that is not all the cells the quirk applies to.
  """
  baselines = list(dict.fromkeys(d["baseline"] for d in deltas))
  quirks = list(dict.fromkeys(d["quirk"] for d in deltas))
  header = ["quirk", *baselines, "avg"]
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for quirk in quirks:
    mine = {
      d["baseline"]: d[f"d_{metric}"] for d in deltas if d["quirk"] == quirk
    }
    cells = [quirk]
    for baseline in baselines:
      cells.append(_signed(mine[baseline]) if baseline in mine else "n/a")
    values = [v for v in mine.values() if not np.isnan(v)]
    text = _signed(float(np.mean(values))) if values else "-"
    if values and len(values) < len(mine):
      text += f" ({len(values)}/{len(mine)} cells)"
    cells.append(text)
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def quirk_summary(deltas: Sequence[dict]) -> str:
  """Markdown: per quirk, its mean change of accuracy, PT and IR (pp), over
  how many cells, and what the release does where (when known)."""
  quirks = list(dict.fromkeys(d["quirk"] for d in deltas))
  sources = {}
  for d in deltas:
    if d.get("source"):
      sources.setdefault(d["quirk"], d["source"])
  with_source = bool(sources)
  header = ["quirk", *(f"Δ {label}" for _, label in DELTA_METRICS), "cells"]
  header += ["the release's choice (file)"] if with_source else []
  lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
  for quirk in quirks:
    mine = [d for d in deltas if d["quirk"] == quirk]
    cells = [quirk]
    for metric, _ in DELTA_METRICS:
      values = [
        d[f"d_{metric}"] for d in mine if not np.isnan(d[f"d_{metric}"])
      ]
      cells.append(_signed(float(np.mean(values))) if values else "-")
    cells.append(str(len(mine)))
    cells += [sources.get(quirk, "")] if with_source else []
    lines.append("| " + " | ".join(cells) + " |")
  return "\n".join(lines)


def quirk_sections(deltas: Sequence[dict]) -> list[tuple]:
  """The report's quirk-ablation sections: the summary, then one table per
  metric (per cell)."""
  intro = (
    "Each release quirk switched on alone against the same cell without "
    "it (same model, same training unless the quirk changes training): "
    "quirk minus baseline, percentage points."
  )
  body = f"{intro}\n\n{quirk_summary(deltas)}"
  sections = [("Release quirks: what each one moves", body)]
  for metric, label in DELTA_METRICS:
    sections.append(
      (f"Release quirks: Δ {label} per cell (pp)", quirk_table(deltas, metric))
    )
  return sections


def figure_quirks(deltas: Sequence[dict], path: str) -> str:
  """Δ accuracy, Δ PT and Δ IR per quirk: the mean as a bar, each cell a dot."""
  plt = _pyplot()
  quirks = list(dict.fromkeys(d["quirk"] for d in deltas))
  baselines = list(dict.fromkeys(d["baseline"] for d in deltas))
  colours = plt.get_cmap("tab10")
  fig, axes = plt.subplots(
    1,
    len(DELTA_METRICS),
    figsize=(4 * len(DELTA_METRICS), 0.45 * len(quirks) + 1.5),
    sharey=True,
    constrained_layout=True,
  )
  y = np.arange(len(quirks))
  for ax, (metric, label) in zip(axes, DELTA_METRICS):
    means = []
    for quirk in quirks:
      values = [
        100 * d[f"d_{metric}"]
        for d in deltas
        if d["quirk"] == quirk and not np.isnan(d[f"d_{metric}"])
      ]
      means.append(np.mean(values) if values else 0.0)
    ax.barh(y, means, color="0.8")
    for k, baseline in enumerate(baselines):
      points = [
        (quirks.index(d["quirk"]), 100 * d[f"d_{metric}"])
        for d in deltas
        if d["baseline"] == baseline and not np.isnan(d[f"d_{metric}"])
      ]
      if points:
        rows, values = zip(*points)
        ax.scatter(
          values, rows, s=14, color=colours(k % 10), label=baseline, zorder=3
        )
    ax.axvline(0, color="k", linewidth=0.6)
    ax.set_title(f"Δ {label} (pp)")
    ax.grid(alpha=0.3, axis="x")
  axes[0].set_yticks(y, quirks)
  axes[0].invert_yaxis()
  axes[-1].legend(fontsize=7, loc="best")
  _save(plt, fig, path)
  return path


# --------------------------------------------------------------- figures ----


def _pyplot():
  import matplotlib

  matplotlib.use("Agg")
  import matplotlib.pyplot as plt

  return plt


def _label(run_dir: str) -> str:
  meta = files.read_json(os.path.join(run_dir, META))
  return meta.get("name") or os.path.basename(run_dir.rstrip("/"))


def figure_threshold_curves(
  run_dirs: Sequence[str],
  path: str,
  thresholds: Sequence[float] = tuple(np.linspace(0.05, 0.95, 19)),
) -> str:
  """PT and IR against the validity threshold, a line per run (from the records)."""
  plt = _pyplot()
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  for run_dir in run_dirs:
    c = records_lib.curve(run_dir, thresholds)
    for ax, metric in zip(axes, ("pt", "ir")):
      ax.plot(
        c["threshold"],
        100 * np.asarray(c[metric], float),
        marker="o",
        markersize=3,
        label=_label(run_dir),
      )
  return _save_pt_ir(
    plt,
    fig,
    axes,
    ("Prediction trustworthiness (PT)", "Inference reliability (IR)"),
    "validity threshold on RMA",
    8,
    path,
  )


def _save_pt_ir(
  plt, fig, axes, titles, xlabel: str, legend_size: int, path: str
) -> str:
  """Labels the PT and IR panels (percent, 0-100), writes the figure, closes it."""
  for ax, title in zip(axes, titles):
    ax.set_xlabel(xlabel)
    ax.set_ylabel("%")
    ax.set_title(title)
    ax.set_ylim(0, 100)
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=legend_size)
  _save(plt, fig, path)
  return path


def _save(plt, fig, path: str) -> None:
  """Writes a figure atomically (a full disk never leaves a truncated PNG)."""
  with files.atomic(path) as tmp:
    fig.savefig(tmp, dpi=110)
  plt.close(fig)


def figure_heatmaps(
  run_dirs: Sequence[str],
  images: Mapping[str, np.ndarray],
  masks: Mapping[str, np.ndarray],
  path: str,
  ids: Sequence[str] | None = None,
) -> str:
  """The same images explained by every run (the study's Figure 3).

  Args:
    run_dirs: evaluated runs that kept heatmaps of the figure ids.
    images: {id: [S, S, 3] uint8} the images at the model's input resolution.
    masks: {id: [S, S]} their object masks (drawn as a contour).
    path: PNG to write.
    ids: which ids (default: those of `images` that every run kept).
  Returns:
    path.
  """
  plt = _pyplot()
  heatmaps = {
    run_dir: records_lib.load_heatmaps(run_dir) for run_dir in run_dirs
  }
  records = {
    run_dir: records_lib.load(run_dir).arrays() for run_dir in run_dirs
  }
  if ids is None:
    ids = [i for i in images if all(i in h for h in heatmaps.values())]
  if not ids:
    raise ValueError(
      "no image has a heatmap in every run; evaluate with figure_ids."
    )
  fig, axes = plt.subplots(
    len(ids),
    len(run_dirs) + 1,
    squeeze=False,
    figsize=(1.6 * (len(run_dirs) + 1), 1.7 * len(ids)),
    constrained_layout=True,
  )
  for r, sample_id in enumerate(ids):
    axes[r, 0].imshow(images[sample_id])
    axes[r, 0].contour(
      np.asarray(masks[sample_id]) > 0, levels=[0.5], colors="w", linewidths=0.8
    )
    axes[r, 0].set_title(sample_id, fontsize=7)
    for c, run_dir in enumerate(run_dirs, start=1):
      rec = records[run_dir]
      row = int(np.nonzero(rec["ids"] == sample_id)[0][0])
      ax = axes[r, c]
      ax.imshow(images[sample_id])
      ax.imshow(
        heatmaps[run_dir][sample_id], cmap="jet", alpha=0.5, vmin=0, vmax=1
      )
      ax.contour(
        np.asarray(masks[sample_id]) > 0,
        levels=[0.5],
        colors="w",
        linewidths=0.8,
      )
      mark = "right" if rec["correct"][row] else "wrong"
      title = f"RMA {rec['rma'][row]:.2f}, {mark}"
      if r == 0:
        title = f"{_label(run_dir)}\n{title}"
      ax.set_title(title, fontsize=7)
  for ax in axes.ravel():
    ax.set_xticks([])
    ax.set_yticks([])
  _save(plt, fig, path)
  return path


def figure_corruptions(rows: Sequence[dict], path: str) -> str:
  """PT and IR against the corruption severity, a line per (method, corruption).

  Rows with an empty `corruption` are drawn at severity 0 (clean) for each
  corruption of the same method, model and dataset.
  """
  plt = _pyplot()
  corrupted = [r for r in rows if r.get("corruption")]
  if not corrupted:
    raise ValueError(
      "no row has a corruption; evaluate ImageNet-C cells first."
    )
  fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
  groups = sorted(
    {
      (r["method"], r["model"], r["dataset"], r["corruption"])
      for r in corrupted
    }
  )
  for method, model, dataset, corruption in groups:
    points = [
      (int(r["severity"]), r)
      for r in corrupted
      if (r["method"], r["model"], r["dataset"], r["corruption"])
      == (method, model, dataset, corruption)
    ]
    points += [
      (0, r)
      for r in rows
      if not r.get("corruption")
      and (r["method"], r["model"]) == (method, model)
    ]
    points.sort(key=lambda p: p[0])
    for ax, metric in zip(axes, ("pt", "ir")):
      ax.plot(
        [p[0] for p in points],
        [100 * p[1][metric] for p in points],
        marker="o",
        markersize=3,
        label=f"{method} {model} {corruption}",
      )
  return _save_pt_ir(
    plt,
    fig,
    axes,
    ("PT against severity", "IR against severity"),
    "severity (0 = clean)",
    7,
    path,
  )
