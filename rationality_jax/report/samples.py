"""Samples across runs: each sample's cell per run, and the transitions from ZS.

  groups = samples.group_runs(run_dirs, threshold=0.5)
  for group in groups:                      # one (model, dataset, split)
    group.runs[0].cells                     # [n] int8 index into CELLS
    samples.transitions(group)              # [(zs run, run, [5, 5] counts)]
  samples.transition_section(groups)        # report.md's markdown

A sample's cell (RR, RW, WR, WW, or undefined) is the one its run's summary
counts it in: the records under the run's degenerate-case policies
(`metrics.Accumulator.evidence`) at the report's threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
import dataclasses
import os

import numpy as np

from rationality_jax import files
from rationality_jax import metrics
from rationality_jax.report import records as records_lib
from rationality_jax.report.gallery import CELLS
from rationality_jax.report.gallery import UNDEFINED
from rationality_jax.report.gallery import cell_codes
from rationality_jax.report.rows import META
from rationality_jax.report.rows import label as row_label


@dataclasses.dataclass
class Run:
  """One evaluated run's records and each sample's cell."""

  run_dir: str
  meta: dict
  arrays: dict[str, np.ndarray]
  cells: np.ndarray  # [n] int8 index into CELLS
  name: str = ""

  @property
  def ids(self) -> np.ndarray:
    return self.arrays["ids"]


@dataclasses.dataclass
class Group:
  """Runs of one model on one dataset split: a row per sample (the union of
  their ids, in split order), a column per run."""

  model: str
  dataset: str
  split: str
  runs: list[Run]
  ids: np.ndarray = None  # [m] the union, in split order
  index: np.ndarray = None  # [m] split positions
  label: np.ndarray = None  # [m]
  rows: list[np.ndarray] = None  # per run: [n_run] its samples' rows here

  @property
  def title(self) -> str:
    split = f" ({self.split})" if self.split else ""
    return f"{self.model} / {self.dataset}{split}"


def run_cells(arrays: dict, run_dir: str, threshold: float) -> np.ndarray:
  """[n] int8 cells of a run's records under its own policies."""
  acc = metrics.Accumulator.from_arrays(arrays)
  evidence = acc.evidence(threshold, **records_lib.policies(run_dir))
  return cell_codes(arrays["correct"], evidence["valid"])


def load_run(run_dir: str, threshold: float) -> Run:
  meta = files.read_json(os.path.join(run_dir, META))
  arrays = records_lib.load(run_dir).arrays()
  n = len(arrays["correct"])
  if "ids" not in arrays:
    arrays["ids"] = np.asarray([str(i) for i in range(n)])
  for name, fill in (("index", np.arange(n)), ("label", np.full(n, -1))):
    arrays.setdefault(name, fill)
  name = row_label({**meta, "name": meta.get("name") or run_dir})
  cells = run_cells(arrays, run_dir, threshold)
  return Run(run_dir, meta, arrays, cells, name)


def group_runs(run_dirs: Sequence[str], threshold: float = 0.5) -> list[Group]:
  """Runs grouped by (model, dataset, corruption, split), in first-seen order;
  each group's rows are the union of its runs' samples."""
  groups: dict[tuple, Group] = {}
  for run_dir in run_dirs:
    run = load_run(run_dir, threshold)
    meta = run.meta
    dataset = meta.get("dataset", "")
    if meta.get("corruption"):
      dataset = f"{dataset}-c {meta['corruption']}"
    key = (meta.get("model", ""), dataset, meta.get("split", ""))
    groups.setdefault(key, Group(*key, runs=[])).runs.append(run)
  for group in groups.values():
    _index_rows(group)
  return list(groups.values())


def _index_rows(group: Group) -> None:
  """The union of the runs' ids, ordered by split position, then id."""
  first: dict[str, tuple[int, int]] = {}
  for run in group.runs:
    for sample_id, index, label in zip(
      run.ids.tolist(),
      run.arrays["index"].tolist(),
      run.arrays["label"].tolist(),
    ):
      first.setdefault(sample_id, (int(index), int(label)))
  ordered = sorted(first, key=lambda i: (first[i][0], i))
  group.ids = np.asarray(ordered, dtype=str)
  group.index = np.asarray([first[i][0] for i in ordered], np.int64)
  group.label = np.asarray([first[i][1] for i in ordered], np.int64)
  row_of = {sample_id: row for row, sample_id in enumerate(ordered)}
  group.rows = [
    np.asarray([row_of[i] for i in run.ids.tolist()], np.int64)
    for run in group.runs
  ]


def column(group: Group, r: int, values: np.ndarray, fill) -> np.ndarray:
  """A run's per-sample `values` laid out on the group's rows (`fill` where
  the run lacks the sample)."""
  out = np.full(len(group.ids), fill, dtype=np.asarray(values).dtype)
  out[group.rows[r]] = values
  return out


def transitions(group: Group) -> list[tuple[Run, Run, np.ndarray]]:
  """(ZS run, run, [5, 5] counts: ZS cell (rows) -> the run's cell) for each
  non-ZS run evaluated on the same samples as a ZS run of the group (the ZS
  run with the same heatmap when there is one)."""
  zs = [r for r in group.runs if r.meta.get("method") == "zs"]
  out = []
  for run in group.runs:
    if run.meta.get("method") == "zs":
      continue
    same = [z for z in zs if set(z.ids.tolist()) == set(run.ids.tolist())]
    same.sort(key=lambda z: z.meta.get("heatmap") != run.meta.get("heatmap"))
    if not same:
      continue
    base = same[0]
    order = {sample_id: i for i, sample_id in enumerate(run.ids.tolist())}
    after = run.cells[[order[i] for i in base.ids.tolist()]]
    matrix = np.zeros((len(CELLS), len(CELLS)), np.int64)
    np.add.at(matrix, (base.cells, after), 1)
    out.append((base, run, matrix))
  return out


def matrix_table(before: str, after: str, matrix: np.ndarray) -> str:
  """A transition matrix as a markdown table (the undefined row and column
  only when a sample is undefined on either side)."""
  keep = list(range(len(CELLS)))
  if not (matrix[UNDEFINED].any() or matrix[:, UNDEFINED].any()):
    keep.remove(UNDEFINED)
  names = [CELLS[i] for i in keep]
  lines = [
    f"| {before} \\ {after} | {' | '.join(names)} | total |",
    "|---" * (len(keep) + 2) + "|",
  ]
  for i in keep:
    counts = [int(matrix[i, j]) for j in keep]
    lines.append(
      f"| {CELLS[i]} | {' | '.join(map(str, counts))} | {sum(counts)} |"
    )
  totals = [int(matrix[keep][:, j].sum()) for j in keep]
  lines.append(f"| total | {' | '.join(map(str, totals))} | {sum(totals)} |")
  return "\n".join(lines)


def transition_section(groups: Sequence[Group], threshold: float) -> str:
  """report.md's transitions: one matrix per adapted run, or '' when no run
  shares its samples with a ZS run of its model and dataset."""
  parts = []
  for group in groups:
    for base, run, matrix in transitions(group):
      moved = int(matrix.sum() - np.trace(matrix))
      parts += [
        f"**{group.title}: {base.name} -> {run.name}** ({moved} of "
        f"{int(matrix.sum())} samples change cell)",
        "",
        matrix_table(base.name, run.name, matrix),
        "",
      ]
  if not parts:
    return ""
  head = (
    f"How many samples moved from each cell under zero-shot (rows) to each "
    f"cell under the adapted method (columns), on the same samples, at "
    f"threshold {threshold}: RW under the method from RR under ZS are "
    "samples adaptation left right for the wrong reason. report.html lists "
    "each of them."
  )
  return "\n".join([head, "", *parts]).rstrip() + "\n"
