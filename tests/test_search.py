"""Exact kNN in JAX against a brute-force numpy reference: block sizes, meshes, ties, compiles."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from xtjax.retrieval import search
from xtjax.retrieval.search import knn
from xtjax.sharding import make_mesh

MESHES = {
    "none": lambda: None,
    "1": lambda: make_mesh([("keys", 1)], jax.devices()[:1]),
    "8": lambda: make_mesh([("keys", 8)]),
    "2x4": lambda: make_mesh([("data", 2), ("fsdp", 4)]),
}


def reference(queries, keys, normalize):
  """Full float64 similarity matrix; np.argsort(-s, kind="stable") is the expected order."""
  q, k = queries.astype(np.float32), keys.astype(np.float32)
  if normalize:
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-30)
    k = k / np.maximum(np.linalg.norm(k, axis=1, keepdims=True), 1e-30)
  return q.astype(np.float64) @ k.astype(np.float64).T


def assert_knn(scores, indices, queries, keys, k, normalize=True):
  """Scores within 1e-5; indices equal, except swaps of non-identical float32 near-ties."""
  s = reference(queries, keys, normalize)
  order = np.argsort(-s, axis=1, kind="stable")[:, :k]
  assert scores.shape == indices.shape == (len(queries), k)
  assert scores.dtype == np.float32 and indices.dtype == np.int32
  np.testing.assert_allclose(scores, np.take_along_axis(s, order, 1), atol=1e-5)
  got, want = np.take_along_axis(s, indices, 1), np.take_along_axis(s, order, 1)
  near_tie = (np.abs(got - want) < 1e-6) & (got != want)
  assert np.all((indices == order) | near_tie), np.argwhere((indices != order) & ~near_tie)[:5]


@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("block_size", [7, 64, 4096])
@pytest.mark.parametrize("n,m,d,k", [(50, 37, 16, 5), (130, 203, 8, 1), (9, 21, 4, 21)])
def test_matches_numpy(mesh, block_size, n, m, d, k):
  rng = np.random.default_rng(n * m + d)
  queries = rng.normal(size=(n, d)).astype(np.float32)
  keys = rng.normal(size=(m, d)).astype(np.float32)
  keys[m // 2] = keys[1]  # an identical key: a tie for every query
  queries[0] = keys[3]
  scores, indices = knn(queries, keys, k, mesh=MESHES[mesh](), block_size=block_size)
  assert_knn(scores, indices, queries, keys, k)


@pytest.mark.parametrize("mesh", list(MESHES))
@pytest.mark.parametrize("block_size", [7, 64, 4096])
def test_ties_break_by_lower_index(mesh, block_size):
  # Small integer vectors: every product is exact, so ties are everywhere and exact.
  rng = np.random.default_rng(block_size)
  queries = rng.integers(-2, 3, size=(40, 3)).astype(np.float32)
  keys = rng.integers(-2, 3, size=(45, 3)).astype(np.float32)
  keys[[10, 30, 44]] = keys[2]
  s = reference(queries, keys, False)
  for k in (1, 6, 45):
    scores, indices = knn(queries, keys, k, mesh=MESHES[mesh](), block_size=block_size,
                          normalize=False)
    order = np.argsort(-s, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(indices, order)
    np.testing.assert_array_equal(scores, np.take_along_axis(s, order, 1))


def test_zero_vectors_and_negative_zero():
  queries = np.array([[0.0, 0.0], [1.0, 0.0]], np.float32)
  keys = np.array([[0.0, 1.0], [-1.0, 0.0], [0.0, -1.0], [0.0, 0.0]], np.float32)
  scores, indices = knn(queries, keys, 4)
  np.testing.assert_array_equal(scores[0], [0, 0, 0, 0])
  np.testing.assert_array_equal(indices, [[0, 1, 2, 3], [0, 2, 3, 1]])


def test_accepts_jax_arrays_and_no_queries():
  keys = np.eye(3, dtype=np.float32)
  scores, indices = knn(jax.numpy.asarray(keys[::-1]), jax.numpy.asarray(keys), 1)
  np.testing.assert_array_equal(indices[:, 0], [2, 1, 0])
  scores, indices = knn(np.zeros((0, 3), np.float32), keys, 2)
  assert scores.shape == indices.shape == (0, 2)


@pytest.mark.parametrize("kwargs,message", [
    (dict(k=0), "between 1 and the number of keys"),
    (dict(k=4), "between 1 and the number of keys"),
    (dict(k=1, block_size=0), "block_size"),
])
def test_bad_arguments(kwargs, message):
  with pytest.raises(ValueError, match=message):
    knn(np.ones((2, 3)), np.ones((3, 3)), **kwargs)
  with pytest.raises(ValueError, match="queries"):
    knn(np.ones((2, 4)), np.ones((3, 3)), 1)


@pytest.fixture
def compiles():
  """A list that collects one entry per XLA backend compilation while the test runs (the
  persistent compilation cache is off, so every compilation reaches the backend)."""
  cached = jax.config.jax_enable_compilation_cache
  jax.config.update("jax_enable_compilation_cache", False)
  events = []

  def listener(event, duration, **kwargs):
    if event == "/jax/core/compile/backend_compile_duration":
      events.append(event)

  jax.monitoring.register_event_duration_secs_listener(listener)
  yield events
  jax.monitoring.unregister_event_duration_listener(listener)
  jax.config.update("jax_enable_compilation_cache", cached)


@pytest.mark.parametrize("mesh", ["none", "8"])
def test_compiles_do_not_grow_with_n_or_m(mesh, compiles):
  mesh = MESHES[mesh]()
  rng = np.random.default_rng(0)
  data = rng.normal(size=(300, 12)).astype(np.float32)
  knn(data[:5], data[:7], 3, mesh=mesh, block_size=16)
  warm = len(compiles)
  assert warm > 0  # the listener sees compilations
  for n, m in [(1, 3), (16, 16), (17, 33), (100, 250), (300, 299)]:
    scores, indices = knn(data[:n], data[-m:], 3, mesh=mesh, block_size=16)
    assert_knn(scores, indices, data[:n], data[-m:], 3)
  assert len(compiles) == warm
  mesh = mesh or jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("keys",))
  devices = mesh.devices.size
  init, step = search._kernels(mesh, 16, -(-16 // devices), 3, True)
  assert init._cache_size() == 1 and step._cache_size() == 1
