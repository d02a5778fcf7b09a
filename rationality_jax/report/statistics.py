"""What makes a row defensible: intervals, paired differences, baselines, warnings.

  fields = statistics.row_statistics(records, threshold, policy, pixels)
  statistics.add_paired(rows, records_by_row)      # '<stat>_vs_zs'

All from the per-sample records alone (`metrics.bootstrap`,
`metrics.baselines`), so a report at another threshold gets its own:

  accuracy_ci, pt_ci, ir_ci    95% percentile bootstrap [low, high] over the
                               samples (seeded, `RESAMPLES` resamples)
  accuracy_vs_zs, pt_vs_zs,    [delta, low, high] against the zero-shot run
  ir_vs_zs                     of the same model, dataset and corruption,
                               paired on the same samples (same resamples)
  uniform_map_rma              the mean RMA a uniform map would score (the
                               mean share of the image the mask covers)
  uniform_map_valid            the share of samples on which a uniform map
                               is already valid evidence at the threshold
  warnings                     a run whose maps are near-constant, or whose
                               mean RMA is within `UNIFORM_MARGIN` of the
                               uniform map's: its PT/IR say little about
                               the model
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import numpy as np

from rationality_jax import metrics

RESAMPLES = 1000
LEVEL = 0.95
SEED = 0
STATISTICS = ("accuracy", "pt", "ir")
# A map is near-constant when the standard deviation of its normalised
# values (in [0, 1]) is below this; a run is flagged when most maps are.
NEAR_CONSTANT_STD = 0.01
NEAR_CONSTANT_SHARE = 0.5
# A run's mean RMA this close to the uniform map's is flagged.
UNIFORM_MARGIN = 0.02


def _evidence(records: metrics.Accumulator, threshold: float, policy: dict):
  """(correct, valid, prediction_defined) of every sample under the run's
  degenerate-case policies (as its summary counts them)."""
  evidence = records.evidence(threshold, **policy)
  correct = np.asarray(records.arrays()["correct"], bool)
  return correct, evidence["valid"], evidence["reason"] != 1


def _intervals(records, threshold, policy, resamples, seed) -> dict:
  """`metrics.bootstrap_intervals` of a run's records at `threshold`:
  {stat: [estimate, low, high]} as numpy."""
  correct, valid, defined = _evidence(records, threshold, policy)
  intervals = metrics.bootstrap_intervals(
    correct,
    valid,
    key=jax.random.key(seed),
    resamples=resamples,
    level=LEVEL,
    prediction_defined=defined,
  )
  return {s: np.asarray(intervals[s]) for s in STATISTICS}


def row_statistics(
  records: metrics.Accumulator,
  threshold: float,
  policy: dict,
  pixels: int | None,
  resamples: int = RESAMPLES,
  seed: int = SEED,
) -> dict:
  """A row's intervals, uniform-map baselines and warnings (module docstring).

  `pixels`: the model's input pixels (H x W), which the masks' areas are
  shares of; None for runs recorded before meta.json kept it (then the
  baselines are NaN).
  """
  out = {f"{s}_ci": [float("nan")] * 2 for s in STATISTICS}
  if len(records):
    intervals = _intervals(records, threshold, policy, resamples, seed)
    out.update({f"{s}_ci": intervals[s][1:].tolist() for s in STATISTICS})
  arrays = records.arrays()
  uniform = {"mean_rma": float("nan"), "valid_share": float("nan")}
  if pixels and "mask_area" in arrays and len(records):
    rma = metrics.uniform_map_rma_from_areas(
      np.asarray(arrays["mask_area"], np.int32), pixels
    )
    uniform = metrics.uniform_map_baseline(rma, threshold)
  out["uniform_map_rma"] = float(uniform["mean_rma"])
  out["uniform_map_valid"] = float(uniform["valid_share"])
  out["warnings"] = _warnings(arrays, out["uniform_map_rma"])
  return out


def threshold_bands(
  records: metrics.Accumulator,
  thresholds: Sequence[float],
  policy: dict,
  resamples: int = RESAMPLES,
  seed: int = SEED,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """{'pt', 'ir': ([T] low, [T] high)}: the 95% bootstrap band of PT and IR
  at each validity threshold (the same resamples' seed at each)."""
  low = {s: [] for s in ("pt", "ir")}
  high = {s: [] for s in ("pt", "ir")}
  for threshold in thresholds:
    intervals = _intervals(records, float(threshold), policy, resamples, seed)
    for s in low:
      low[s].append(float(intervals[s][1]))
      high[s].append(float(intervals[s][2]))
  return {s: (np.asarray(low[s]), np.asarray(high[s])) for s in low}


def _warnings(arrays: Mapping[str, np.ndarray], uniform_rma: float) -> list:
  warnings = []
  std = np.asarray(arrays.get("heatmap_std", []), np.float64)
  std = std[np.isfinite(std)]
  if std.size and np.mean(std < NEAR_CONSTANT_STD) > NEAR_CONSTANT_SHARE:
    share = 100 * float(np.mean(std < NEAR_CONSTANT_STD))
    warnings.append(
      f"{share:.0f}% of its heatmaps are near-constant (std < "
      f"{NEAR_CONSTANT_STD} of the normalised map)"
    )
  rma = np.asarray(arrays.get("rma", []), np.float64)
  rma = rma[np.isfinite(rma)]
  if rma.size and np.isfinite(uniform_rma):
    mean = float(rma.mean())
    if abs(mean - uniform_rma) < UNIFORM_MARGIN:
      warnings.append(
        f"its mean RMA {mean:.3f} is within {UNIFORM_MARGIN} of a uniform "
        f"map's {uniform_rma:.3f}: the maps barely localise"
      )
  return warnings


def _aligned(a: metrics.Accumulator, b: metrics.Accumulator):
  """Positions in `a` and in `b` of the samples both recorded (by id)."""
  ids_a, ids_b = a.arrays()["ids"], b.arrays()["ids"]
  common, in_a, in_b = np.intersect1d(ids_a, ids_b, return_indices=True)
  del common
  return in_a, in_b


def paired_against(
  records: metrics.Accumulator,
  baseline: metrics.Accumulator,
  threshold: float,
  policy: dict,
  baseline_policy: dict,
  resamples: int = RESAMPLES,
  seed: int = SEED,
) -> dict:
  """{'<stat>_vs_zs': [delta, low, high]} of `records` minus `baseline` on
  the samples both recorded, paired (the same resamples)."""
  in_a, in_b = _aligned(records, baseline)
  if not len(in_a):
    return {f"{s}_vs_zs": [float("nan")] * 3 for s in STATISTICS}
  correct_a, valid_a, defined_a = _evidence(records, threshold, policy)
  correct_b, valid_b, defined_b = _evidence(
    baseline, threshold, baseline_policy
  )
  paired = metrics.paired_bootstrap(
    correct_a[in_a],
    valid_a[in_a],
    correct_b[in_b],
    valid_b[in_b],
    key=jax.random.key(seed),
    resamples=resamples,
    level=LEVEL,
    prediction_defined_a=defined_a[in_a],
    prediction_defined_b=defined_b[in_b],
  )
  return {
    f"{s}_vs_zs": [float(v) for v in np.asarray(paired[s])] for s in STATISTICS
  }


def add_paired(rows: Sequence[dict], records: Sequence, policies: Sequence):
  """Sets ``<stat>_vs_zs`` on every row that has a zero-shot row of the same
  model, dataset, corruption and severity (the same heatmap preferred);
  None where there is none, and on the zero-shot rows themselves."""
  zs = {}
  for i, row in enumerate(rows):
    if row["method"] == "zs":
      key = (row["model"], row["dataset"], row["corruption"], row["severity"])
      zs.setdefault(key, []).append(i)
  for i, row in enumerate(rows):
    key = (row["model"], row["dataset"], row["corruption"], row["severity"])
    candidates = zs.get(key, [])
    if row["method"] == "zs" or not candidates:
      row.update({f"{s}_vs_zs": None for s in STATISTICS})
      continue
    same_heatmap = [
      j for j in candidates if rows[j]["heatmap"] == row["heatmap"]
    ]
    j = (same_heatmap or candidates)[0]
    row.update(
      paired_against(
        records[i], records[j], row["threshold"], policies[i], policies[j]
      )
    )


def excludes_zero(interval) -> bool:
  """Whether a [delta, low, high] interval lies on one side of 0."""
  if interval is None or any(np.isnan(v) for v in interval):
    return False
  return interval[1] > 0 or interval[2] < 0


def add_seed_summaries(rows: Sequence[dict], records: Sequence, policies):
  """Sets ``seeds`` on the rows of a cell run over several seeds (a grid's
  ``seeds``: rows sharing ``group`` and corruption/severity, with distinct
  seeds): {'seeds', '<stat>': [mean, sd] over the seeds, '<stat>_pooled_ci':
  [low, high] of the samples of every seed pooled}. None elsewhere."""
  groups: dict[tuple, list[int]] = {}
  for i, row in enumerate(rows):
    key = (row.get("group"), row.get("corruption"), row.get("severity"))
    groups.setdefault(key, []).append(i)
  for row in rows:
    row["seeds"] = None
  for members in groups.values():
    seeds = [rows[i].get("seed") for i in members]
    if len(members) < 2 or len(set(seeds)) < len(seeds):
      continue
    pooled = metrics.Accumulator.merge(records[i] for i in members)
    summary = {"seeds": seeds}
    for stat in STATISTICS:
      values = np.asarray([float(rows[i][stat]) for i in members])
      summary[stat] = [float(np.nanmean(values)), float(np.nanstd(values))]
    threshold = rows[members[0]]["threshold"]
    pooled_stats = row_statistics(pooled, threshold, policies[members[0]], None)
    for stat in STATISTICS:
      summary[f"{stat}_pooled_ci"] = pooled_stats[f"{stat}_ci"]
    for i in members:
      rows[i]["seeds"] = summary
