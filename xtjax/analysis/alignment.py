"""Cross-lingual alignment of parallel sentence vectors, and its retention after training.

For English vectors ``x`` and their translations ``y`` (row i of each is one parallel pair):

- ``cosine``: mean cosine of the parallel pairs; ``cosine_shuffled``: the mean cosine of the
  non-parallel pairs (i != j), which is exactly the expected value of ``cosine`` after shuffling
  the pairs at random, computed in closed form; ``cosine_gap``: their difference (anisotropy
  makes raw cosines high even for unrelated sentences).
- ``cka``: linear CKA (Kornblith et al. 2019), ``||Y'X||_F^2 / (||X'X||_F ||Y'Y||_F)`` on
  column-centred ``X``, ``Y``; invariant to orthogonal transforms and isotropic scaling.
- ``retrieval_en_xx`` / ``retrieval_xx_en``: top-1 accuracy (%) of exact cosine search
  (`xtjax.retrieval.search.knn`) from each side to the other; ``retrieval`` their mean.

Retention of a measure is its value after a phase divided by its value for the pretrained model.
"""

from __future__ import annotations

import math

import numpy as np

from xtjax.retrieval.search import knn

MEASURES = ("cosine", "cosine_shuffled", "cosine_gap", "cka", "retrieval_en_xx",
            "retrieval_xx_en", "retrieval")


def _pair(x, y) -> tuple[np.ndarray, np.ndarray]:
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.ndim != 2 or x.shape != y.shape or len(x) < 2:
    raise ValueError(f"alignment needs two [n, d] arrays of parallel rows with n >= 2, got "
                     f"{x.shape} and {y.shape}")
  return x, y


def _unit(x: np.ndarray) -> np.ndarray:
  norm = np.linalg.norm(x, axis=1, keepdims=True)
  return x / np.where(norm > 0, norm, 1.0)


def mean_cosine(x, y) -> float:
  """Mean cosine of row i of ``x`` with row i of ``y`` (zero rows count as cosine 0)."""
  x, y = _pair(x, y)
  return float(np.mean(np.sum(_unit(x) * _unit(y), axis=1)))


def shuffled_cosine(x, y) -> float:
  """Mean cosine over all non-parallel pairs (row i of ``x``, row j != i of ``y``)."""
  x, y = _pair(x, y)
  ux, uy = _unit(x), _unit(y)
  n = len(x)
  total = float(ux.sum(0) @ uy.sum(0))
  return (total - float(np.sum(ux * uy))) / (n * (n - 1))


def linear_cka(x, y) -> float:
  """Linear CKA of two representations (any widths) of the same n examples, in float64."""
  x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
  if x.ndim != 2 or y.ndim != 2 or len(x) != len(y) or len(x) < 2:
    raise ValueError(f"linear CKA needs [n, d1] and [n, d2] arrays with n >= 2, got {x.shape} "
                     f"and {y.shape}")
  x, y = x - x.mean(0), y - y.mean(0)
  if len(x) < max(x.shape[1], y.shape[1]):  # the n x n Gram matrices are the smaller ones
    kx, ky = x @ x.T, y @ y.T
    cross, norm_x, norm_y = np.sum(kx * ky), np.linalg.norm(kx), np.linalg.norm(ky)
  else:
    cross = np.linalg.norm(y.T @ x) ** 2
    norm_x, norm_y = np.linalg.norm(x.T @ x), np.linalg.norm(y.T @ y)
  if norm_x == 0 or norm_y == 0:
    raise ValueError("linear CKA is undefined for a representation without variance")
  return float(cross / (norm_x * norm_y))


def retrieval_top1(x, y, *, mesh=None) -> tuple[float, float]:
  """(x -> y, y -> x) top-1 accuracy in %: row i should retrieve row i of the other side."""
  x, y = _pair(x, y)
  gold = np.arange(len(x))
  _, x2y = knn(x, y, 1, mesh=mesh)
  _, y2x = knn(y, x, 1, mesh=mesh)
  return 100.0 * float(np.mean(x2y[:, 0] == gold)), 100.0 * float(np.mean(y2x[:, 0] == gold))


def measures(english, other, *, mesh=None) -> dict[str, float]:
  """Every measure of `MEASURES` for parallel English and other-language vectors."""
  cosine, shuffled = mean_cosine(english, other), shuffled_cosine(english, other)
  en_xx, xx_en = retrieval_top1(english, other, mesh=mesh)
  return {"cosine": cosine, "cosine_shuffled": shuffled, "cosine_gap": cosine - shuffled,
          "cka": linear_cka(english, other), "retrieval_en_xx": en_xx, "retrieval_xx_en": xx_en,
          "retrieval": (en_xx + xx_en) / 2}


def retention(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
  """``after / before`` per measure; NaN where the pretrained value is 0 (no ratio exists)."""
  return {k: after[k] / before[k] if before[k] != 0 and math.isfinite(before[k]) else math.nan
          for k in after}
