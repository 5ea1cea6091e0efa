"""Column sums, which XLA:CPU runs slowly as written, computed there as a product with ones.

XLA:CPU rewrites a large reduction into a strided reduce-window and a reduce: summing the rows of
a 16 x 128 x 2048 gradient takes 10 ms that way and 1 ms as a product with a vector of ones
(benchmarks/README.md). Other backends get the plain sum (`jax.lax.platform_dependent` picks at
lowering).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def sum_rows(x: jax.Array) -> jax.Array:
  """The sum over every axis but the last (a bias's gradient), in float32, cast to x's dtype."""
  rows = x.reshape(-1, x.shape[-1])

  def ones_product(r):
    return jnp.dot(jnp.ones(r.shape[0], r.dtype), r, precision=jax.lax.Precision.HIGHEST,
                   preferred_element_type=jnp.float32)

  total = jax.lax.platform_dependent(rows, cpu=ones_product,
                                     default=lambda r: r.sum(0, dtype=jnp.float32))
  return total.astype(x.dtype)
