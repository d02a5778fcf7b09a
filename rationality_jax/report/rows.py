"""Report rows: one per evaluated run, from its meta.json and its records.

  rows = report.collect(run_dirs, threshold=0.3)

Every number comes from the per-sample records (`records`), so a report can
be rebuilt at another validity threshold; a run on ImageNet-C gives one row
per severity.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import os
import re

import numpy as np

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax.report import records as records_lib
from rationality_jax.report import statistics

META = records_lib.META
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
  "mean_deletion_auc",
  "mean_insertion_auc",
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
_SEVERITY = re.compile(r"^[a-z_]+/([1-5])/")
PERCENT = ("accuracy", "pt", "ir", "mean_rma", "mean_rra", "mean_pointing_game")


def collect(
  run_dirs: Iterable[str],
  threshold: float = 0.5,
  loaded: Mapping[str, metrics.Accumulator] | None = None,
  seed: int = statistics.SEED,
) -> list[dict]:
  """One row per evaluated run: its meta.json fields, its summary, and the
  statistics that make it defensible (`statistics`: bootstrap intervals
  seeded by `seed`, paired differences against the zero-shot run,
  uniform-map baselines, warnings).

  A run on a corruption (meta ``corruption`` set, ImageNet-C ids
  ``<corruption>/<severity>/<image>``) gives one row per severity.
  ``loaded``: records already read, by run directory (else read here).
  """
  rows, parts_of_rows = [], []
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
      row["group"] = meta.get("group") or meta.get("name", "")
      row["seed"] = meta.get("seed")
      row["trained"] = trained(meta)
      # RISE's baselines unless the run says (only they existed before)
      row["faithfulness_fill"] = meta.get("faithfulness_fill", "rise")
      row.update(
        statistics.row_statistics(
          part, threshold, policy, meta.get("image_pixels"), seed=seed
        )
      )
      row["run_dir"] = run_dir
      rows.append(row)
      parts_of_rows.append((part, policy))
  parts, policies = [p for p, _ in parts_of_rows], [q for _, q in parts_of_rows]
  statistics.add_paired(rows, parts, policies)
  statistics.add_seed_summaries(rows, parts, policies)
  return rows


def trained(meta: Mapping) -> str:
  """'' for a finished (or zero-shot) model; "trained N of M steps" for a
  training run evaluated before its last step (``allow_unfinished``)."""
  step, total = meta.get("train_step"), meta.get("train_total_steps")
  if step is None or total is None or step >= total:
    return ""
  return f"trained {step} of {total} steps"


def label(row: Mapping) -> str:
  """A row's name in tables: with its severity on a corruption, and the
  training it had when it was not finished."""
  text = row["name"]
  if row.get("corruption"):
    text += f" s{row['severity']}"
  if row.get("trained"):
    text += f" ({row['trained']})"
  return text


def _severity(sample_id: str) -> int:
  match = _SEVERITY.match(sample_id)
  return int(match.group(1)) if match else 0
