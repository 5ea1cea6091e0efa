"""Alignment measures against numpy references: CKA invariances, cosine and its shuffled
baseline, top-1 retrieval on planted parallel data, retention ratios."""

import math

import numpy as np
import pytest

from xtjax.analysis import alignment


def rotation(d, seed):
  q, _ = np.linalg.qr(np.random.default_rng(seed).normal(size=(d, d)))
  return q


def hsic_cka(x, y):
  """Kornblith et al.'s definition through centred Gram matrices: HSIC(K, L) normalised."""
  n = len(x)
  h = np.eye(n) - 1.0 / n
  k, l = x @ x.T, y @ y.T
  hsic = lambda a, b: np.trace(a @ h @ b @ h)
  return hsic(k, l) / math.sqrt(hsic(k, k) * hsic(l, l))


@pytest.mark.parametrize("n,d", [(50, 8), (6, 20)])  # feature-space and Gram-space branches
def test_cka_of_itself_and_of_an_orthogonal_rotation_is_one(n, d):
  x = np.random.default_rng(0).normal(size=(n, d))
  assert alignment.linear_cka(x, x) == pytest.approx(1.0, abs=1e-12)
  assert alignment.linear_cka(x, x @ rotation(d, 1)) == pytest.approx(1.0, abs=1e-12)
  assert alignment.linear_cka(x, 3.0 * x + 5.0) == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("n,d1,d2", [(40, 5, 7), (5, 12, 9)])
def test_cka_equals_the_gram_matrix_definition(n, d1, d2):
  rng = np.random.default_rng(2)
  x = rng.normal(size=(n, d1))
  y = x[:, :min(d1, d2)] @ rng.normal(size=(min(d1, d2), d2)) + rng.normal(size=(n, d2))
  value = alignment.linear_cka(x, y)
  assert value == pytest.approx(hsic_cka(x, y), rel=1e-10)
  assert 0.0 < value < 1.0


def test_cosine_and_shuffled_baseline_against_loops():
  rng = np.random.default_rng(3)
  x, y = rng.normal(size=(9, 4)) + 1.0, rng.normal(size=(9, 4)) + 1.0
  cos = lambda a, b: a @ b / (np.linalg.norm(a) * np.linalg.norm(b))
  assert alignment.mean_cosine(x, y) == pytest.approx(np.mean([cos(x[i], y[i]) for i in range(9)]))
  off = [cos(x[i], y[j]) for i in range(9) for j in range(9) if i != j]
  assert alignment.shuffled_cosine(x, y) == pytest.approx(np.mean(off))
  # ... which is the mean over the n - 1 cyclic shifts: each non-parallel pairing once.
  shifts = [alignment.mean_cosine(x, np.roll(y, s, axis=0)) for s in range(1, 9)]
  assert alignment.shuffled_cosine(x, y) == pytest.approx(np.mean(shifts))


def test_retrieval_on_planted_parallel_data_matches_brute_force():
  rng = np.random.default_rng(4)
  x = rng.normal(size=(30, 16))
  y = x @ rotation(16, 5) @ rotation(16, 5).T + 0.05 * rng.normal(size=(30, 16))
  y[[0, 1]] = y[[1, 0]]  # two translations swapped: both directions miss exactly those two

  def brute(a, b):
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return 100 * np.mean(np.argmax(a @ b.T, axis=1) == np.arange(len(a)))

  en_xx, xx_en = alignment.retrieval_top1(x, y)
  assert en_xx == pytest.approx(brute(x, y)) and xx_en == pytest.approx(brute(y, x))
  assert en_xx == xx_en == pytest.approx(100 * 28 / 30)


def test_measures_of_perfectly_aligned_and_of_unrelated_vectors():
  rng = np.random.default_rng(6)
  x = rng.normal(size=(40, 8))
  same = alignment.measures(x, x)
  assert same["cosine"] == pytest.approx(1.0) and same["cka"] == pytest.approx(1.0)
  assert same["retrieval_en_xx"] == same["retrieval_xx_en"] == same["retrieval"] == 100.0
  assert same["cosine_gap"] == pytest.approx(1.0 - alignment.shuffled_cosine(x, x))
  unrelated = alignment.measures(x, rng.normal(size=(40, 8)))
  assert set(unrelated) == set(alignment.MEASURES)
  assert unrelated["cka"] < same["cka"] and unrelated["retrieval"] < 50


def test_retention_is_the_ratio_to_the_pretrained_value():
  ratio = alignment.retention({"cka": 0.3, "cosine": 0.5}, {"cka": 0.6, "cosine": 0.0})
  assert ratio["cka"] == pytest.approx(0.5) and math.isnan(ratio["cosine"])


def test_mismatched_shapes_are_clear_errors():
  with pytest.raises(ValueError, match=r"\[n, d\] arrays of parallel rows"):
    alignment.mean_cosine(np.ones((3, 2)), np.ones((4, 2)))
  with pytest.raises(ValueError, match="linear CKA needs"):
    alignment.linear_cka(np.ones((3, 2)), np.ones((4, 2)))
  with pytest.raises(ValueError, match="without variance"):
    alignment.linear_cka(np.ones((3, 2)), np.random.default_rng(0).normal(size=(3, 2)))
