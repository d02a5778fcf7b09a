"""The study's published PT and IR (its Tables 1-2), for reports beside ours.

  report.PUBLISHED[("pt", "zs", "clip_b16", "cub")]   # 29.38 (%)

Keys (metric, method, model, dataset); the models and datasets in the
study's column order are `PAPER_MODELS` and `PAPER_DATASETS`.
"""

from __future__ import annotations

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
