"""report.md's faithfulness table names what filled the removed pixels."""

from rationality_jax.report import markdown
from rationality_jax.report import tables


def _row(name, fill=None, deletion=0.2, insertion=0.6):
  row = {
    "name": name,
    "heatmap": "chefer(start_layer=0)",
    "mean_deletion_auc": deletion,
    "mean_insertion_auc": insertion,
  }
  if fill:
    row["faithfulness_fill"] = fill
  return row


def test_every_fill_is_named_and_an_older_row_is_rise():
  table = tables.faithfulness_table(
    [_row("zs"), _row("zs-road", "road", 0.1, float("nan"))]
  )
  lines = table.splitlines()
  assert lines[0] == "| run | heatmap | fill | deletion AUC | insertion AUC |"
  assert "| zs | chefer(start_layer=0) | RISE (zeros / blur) |" in lines[2]
  assert lines[3].endswith("| ROAD (noisy linear imputation) | 0.1000 | - |")


def test_results_csv_says_the_fill():
  rows = [dict(_row("zs-road", "road"), n=4, run_dir="/x")]
  header, line = markdown.results_csv(rows).splitlines()
  assert dict(zip(header.split(","), line.split(",")))["faithfulness_fill"] == (
    "road"
  )
