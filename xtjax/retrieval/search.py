"""Exact k-nearest-neighbour search by cosine similarity in JAX, blocked and sharded (no faiss).

Scores exist for one block of queries against one block of keys at a time and are folded into
a running top-k, so memory is bounded by ``block_size`` whatever the corpus sizes. With a mesh,
every device owns a contiguous range of the keys and keeps its own running top-k; the
per-device lists are merged on the host, so no step needs a collective. Blocks are padded to
fixed shapes: the jitted steps compile once per (mesh, block_size, k, d, normalize).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def _normalize(x):
  """Rows scaled to unit L2 norm; zero rows stay zero (as ``faiss.normalize_L2``)."""
  norm = jnp.sqrt(jnp.sum(x * x, axis=-1, keepdims=True))
  return x / jnp.where(norm > 0, norm, 1.0)


@functools.lru_cache(maxsize=None)
def _kernels(mesh: Mesh, block: int, key_block: int, k: int, normalize: bool):
  """Jitted (init, step) for ``block`` queries against ``key_block`` keys per device."""
  axes = mesh.axis_names
  spec = P(axes)

  def init():
    return (jnp.full((1, block, k), -jnp.inf, jnp.float32),
            jnp.full((1, block, k), -1, jnp.int32))

  def step(queries, keys, vals, idx, m, m_local, start):
    # Local view: queries [block, d] (replicated), keys [key_block, d], vals/idx [1, block, k].
    if normalize:
      queries, keys = _normalize(queries), _normalize(keys)
    scores = lax.dot_general(queries, keys, (((1,), (1,)), ((), ())),
                             precision=lax.Precision.HIGHEST,
                             preferred_element_type=jnp.float32)
    first = lax.axis_index(axes) * m_local + start  # global index of this block's first row
    col = first + jnp.arange(key_block, dtype=jnp.int32)
    scores = jnp.where(col < m, scores, -jnp.inf)  # padding rows can never be selected
    scores = jnp.where(scores == 0, 0.0, scores)  # -0.0 ties with 0.0, as in numpy
    # top_k puts the lower position first on ties: the block's own top-k, then its merge with
    # the running top-k (whose candidates all have lower indices) keep ties in index order.
    block_vals, pos = lax.top_k(scores, min(k, key_block))
    cat_vals = jnp.concatenate([vals[0], block_vals], axis=1)
    cat_idx = jnp.concatenate([idx[0], first + pos], axis=1)
    top_vals, pos = lax.top_k(cat_vals, k)
    return top_vals[None], jnp.take_along_axis(cat_idx, pos, axis=1)[None]

  # Both through shard_map, so the running state has one sharding (one jit cache entry).
  init = jax.shard_map(init, mesh=mesh, in_specs=(), out_specs=(spec, spec))
  step = jax.shard_map(step, mesh=mesh, in_specs=(P(), spec, spec, spec, P(), P(), P()),
                       out_specs=(spec, spec))
  return jax.jit(init), jax.jit(step, donate_argnums=(2, 3))


def knn(queries, keys, k: int, *, mesh: Mesh | None = None, block_size: int = 4096,
        normalize: bool = True) -> tuple[np.ndarray, np.ndarray]:
  """The ``k`` keys most similar to each query: (scores [n, k] float32, indices [n, k] int32).

  Similarity is the float32 inner product (``precision=HIGHEST``), after L2-normalising both
  sides when ``normalize`` (cosine; zero vectors stay zero). Each row is sorted by descending
  score, equal scores by ascending key index: the order of ``np.argsort(-s, kind="stable")``.
  Identical key rows tie (every product accumulates over ``d`` in the same order); scores that
  differ only by float32 rounding are not ties and may order differently than a float64
  reference.

  ``queries`` and ``keys`` (arrays of any kind, read to the host once) are streamed in blocks
  of ``block_size`` queries and ``block_size`` keys; the key block is split over all devices of
  ``mesh`` (every mesh axis shards the keys; the last device's range is padded with masked
  rows), and queries are replicated. Cost: the ``2 n m d`` flops of the query-key products
  dominate; then a top-k over every score (``n m`` values, memory-bound) and one host-to-device
  copy of each input. Single-process meshes only (results are read back from every device).
  """
  queries = np.asarray(queries, dtype=np.float32)
  keys = np.asarray(keys, dtype=np.float32)
  if queries.ndim != 2 or keys.ndim != 2 or queries.shape[1] != keys.shape[1]:
    raise ValueError(f"knn needs queries [n, d] and keys [m, d], got {queries.shape} and "
                     f"{keys.shape}")
  n, m = len(queries), len(keys)
  if not 1 <= k <= m:
    raise ValueError(f"knn: k={k} must be between 1 and the number of keys ({m})")
  if block_size < 1:
    raise ValueError(f"knn: block_size={block_size} must be positive")
  if mesh is None:
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("keys",))
  devices = mesh.devices.size
  key_block = math.ceil(block_size / devices)
  m_local = math.ceil(math.ceil(m / devices) / key_block) * key_block
  init, step = _kernels(mesh, block_size, key_block, k, normalize)
  shard, replicated = NamedSharding(mesh, P(mesh.axis_names)), NamedSharding(mesh, P())

  # Key block j holds rows [i * m_local + j * key_block, ... + key_block) for device i; rows
  # past m repeat the last key and are masked by index inside the step.
  key_blocks = []
  for start in range(0, m_local, key_block):
    rows = (np.arange(devices)[:, None] * m_local + start + np.arange(key_block)).ravel()
    key_blocks.append(jax.device_put(keys[np.minimum(rows, m - 1)], shard))
  sizes = (np.int32(m), np.int32(m_local))

  results = []
  for q_start in range(0, n, block_size):
    rows = np.minimum(np.arange(q_start, q_start + block_size), n - 1)
    block = jax.device_put(queries[rows], replicated)
    vals, idx = init()
    for j, key_blk in enumerate(key_blocks):
      vals, idx = step(block, key_blk, vals, idx, *sizes, np.int32(j * key_block))
    results.append((vals, idx))

  # Device-major order is ascending key index (contiguous ranges); the stable sort keeps it.
  scores = np.zeros((n, k), np.float32)
  indices = np.zeros((n, k), np.int32)
  for b, (vals, idx) in enumerate(results):
    vals = np.asarray(vals).transpose(1, 0, 2).reshape(block_size, devices * k)
    idx = np.asarray(idx).transpose(1, 0, 2).reshape(block_size, devices * k)
    order = np.argsort(-vals, axis=1, kind="stable")[:, :k]
    rows = slice(b * block_size, min(n, (b + 1) * block_size))
    scores[rows] = np.take_along_axis(vals, order, axis=1)[:rows.stop - rows.start]
    indices[rows] = np.take_along_axis(idx, order, axis=1)[:rows.stop - rows.start]
  return scores, indices
