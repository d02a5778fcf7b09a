"""ROAD's noisy linear imputation as its reference states it: a sparse system
per image, solved by scipy (the parity tests and benchmarks/metrics.py)."""

import numpy as np
import scipy.sparse
import scipy.sparse.linalg

# (dy, dx, weight): ROAD's ``neighbors_weights``.
NEIGHBOURS = [
  (dy, dx, 1 / 6 if dy == 0 or dx == 0 else 1 / 12)
  for dy in (-1, 0, 1)
  for dx in (-1, 0, 1)
  if (dy, dx) != (0, 0)
]


def spsolve_fill(image: np.ndarray, removed: np.ndarray) -> np.ndarray:
  """The reference's system, built row by row as its ``setup_sparse_system``
  does: for each removed pixel i, ``-(sum of its in-image neighbour
  weights) x_i + sum_(removed j) w_ij x_j = -sum_(kept j) w_ij v_j``; float64
  spsolve, one right-hand side per channel; no noise."""
  height, width, channels = image.shape
  ys, xs = np.nonzero(removed)
  index = np.full((height, width), -1)
  index[ys, xs] = np.arange(len(ys))
  rows, cols, values = [], [], []
  diagonal = np.zeros(len(ys))
  rhs = np.zeros((len(ys), channels))
  for dy, dx, w in NEIGHBOURS:
    y, x = ys + dy, xs + dx
    inside = (y >= 0) & (y < height) & (x >= 0) & (x < width)
    diagonal[inside] -= w
    i, y, x = np.nonzero(inside)[0], y[inside], x[inside]
    hole = removed[y, x]
    rows.append(i[hole])
    cols.append(index[y[hole], x[hole]])
    values.append(np.full(hole.sum(), w))
    np.subtract.at(rhs, i[~hole], w * image[y[~hole], x[~hole]])
  rows.append(np.arange(len(ys)))
  cols.append(np.arange(len(ys)))
  values.append(diagonal)
  system = scipy.sparse.csc_matrix(
    (np.concatenate(values), (np.concatenate(rows), np.concatenate(cols))),
    shape=(len(ys), len(ys)),
  )
  out = image.astype(np.float64).copy()
  out[ys, xs] = scipy.sparse.linalg.spsolve(system, rhs).reshape(-1, channels)
  return out
