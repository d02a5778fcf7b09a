"""report/guided.py's tables on hand-made annotated rows: a line per trained
setting (its seeds averaged, mean ± standard deviation), a column per
heatmap; the masks-per-class table only when masks vary."""

import numpy as np

from rationality_jax.report import guided


def _row(name, method, heatmap, seed, pt, accuracy=0.6, ir=0.5, k=None):
  return dict(
    name=f"{name}-s{seed}" if seed else name,
    group=name,
    method=method,
    model="m",
    dataset="d",
    heatmap_name=heatmap,
    seed=seed,
    pt=pt,
    ir=ir,
    accuracy=accuracy,
    masks_per_class=k,
    model_key=f"{method}-{k}",
    setting_key=method,
  )


def test_heatmap_table_averages_seeds_per_trained_setting():
  rows = [
    _row("zs", "zs", "chefer", None, 0.6),
    _row("zs@gradcam", "zs", "gradcam", None, 0.4),
    _row("guided", "guided", "chefer", 42, 0.8, accuracy=0.60, k=-1),
    _row("guided", "guided", "chefer", 43, 0.9, accuracy=0.64, k=-1),
    _row("guided@gradcam", "guided", "gradcam", 42, 0.5, k=-1),
    _row("guided@gradcam", "guided", "gradcam", 43, 0.3, k=-1),
  ]
  table = guided.heatmap_table(rows).splitlines()
  assert table[0] == (
    "| run | seeds | accuracy | PT chefer | PT gradcam | IR chefer | IR gradcam |"
  )
  assert table[2] == "| zs | 1 | 60.00 | 60.00 | 40.00 | 50.00 | 50.00 |"
  sd = np.std([80.0, 90.0])  # 5.00
  assert table[3] == (
    f"| guided | 2 | 62.00 ± 2.00 | 85.00 ± {sd:.2f} | 40.00 ± 10.00 | "
    "50.00 ± 0.00 | 50.00 ± 0.00 |"
  )
  # One number of masks: nothing to plot against.
  assert guided.masks_table(rows) == ""


def test_masks_table_has_a_column_per_number_of_masks():
  rows = [
    _row("guided-k1", "guided", "chefer", 42, 0.7, k=1),
    _row("guided", "guided", "chefer", 42, 0.8, k=-1),
  ]
  lines = guided.masks_table(rows).splitlines()
  assert lines[0] == (
    "| model | dataset | method | heatmap | PT k=1 | PT k=all "
    "| acc k=1 | acc k=all |"
  )
  assert (
    lines[2] == "| m | d | guided | chefer | 70.00 | 80.00 | 60.00 | 60.00 |"
  )
