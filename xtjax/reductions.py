"""Reductions that XLA:CPU runs slowly as written, computed there another way.

XLA:CPU rewrites a large reduction into strided reduce-windows: summing the rows of a
16 x 128 x 2048 gradient takes 10 ms that way and 1 ms as a product with a vector of ones, and the
squared norm of the 250k x 512 embedding gradient 101 ms, against 52 ms over the flattened vector
(benchmarks/README.md). Other backends get the plain form (`jax.lax.platform_dependent` picks at
lowering).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax


def sum_rows(x: jax.Array) -> jax.Array:
  """The sum over every axis but the last (a bias's gradient), in float32, cast to x's dtype."""
  rows = x.reshape(-1, x.shape[-1])

  def ones_product(r):
    return jnp.dot(jnp.ones(r.shape[0], r.dtype), r, precision=jax.lax.Precision.HIGHEST,
                   preferred_element_type=jnp.float32)

  total = jax.lax.platform_dependent(rows, cpu=ones_product,
                                     default=lambda r: r.sum(0, dtype=jnp.float32))
  return total.astype(x.dtype)


def global_norm(tree) -> jax.Array:
  """`optax.tree.norm` of a tree (the l2 norm of all its leaves), in float32; on a single CPU
  device each leaf is flattened first (with several devices a flattened sharded leaf would be
  resharded: XLA:CPU's fsdp program for XLM-R large grew by 0.2 GiB per device)."""
  leaves = jax.tree.leaves(tree)
  if jax.device_count() > 1:
    return plain_norm(*leaves)
  return jax.lax.platform_dependent(*leaves, cpu=flat_norm, default=plain_norm)


def flat_norm(*leaves) -> jax.Array:
  """The l2 norm of ``leaves``, each summed as one flat vector (XLA:CPU's faster form)."""
  return jnp.sqrt(sum(jnp.sum(jnp.square(x.reshape(-1).astype(jnp.float32))) for x in leaves))


def plain_norm(*leaves) -> jax.Array:
  """`optax.tree.norm` of ``leaves`` in float32."""
  return optax.tree.norm(leaves).astype(jnp.float32)
