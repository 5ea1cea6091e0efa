"""Pure train and eval steps, jitted with explicit shardings and donated state.

``train_step(params, opt_state, batch, rng) -> (params, opt_state, metrics)`` for any
``loss_fn(params, batch, rng) -> (loss, counts)``, and ``eval_step(params, batch) -> outputs``.
Batches carry ``example_mask`` (0 for padding rows), so a padded last batch changes nothing.
"""

from __future__ import annotations

import functools
import logging
from typing import Callable

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from xtjax.reductions import global_norm

log = logging.getLogger(__name__)

# XLA:CPU's own dot and reduction kernels instead of its default YNNPACK fusions, which are slow
# for LayerNorm and softmax reductions and for batched or narrow dots (benchmarks/README.md: a
# 32 x 384-token forward of the benchmark's small model 3.05 -> 2.20 s).
CPU_COMPILER_OPTIONS = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compiler_options(device: jax.Device) -> dict | None:
  """The XLA options of xtjax's programs on ``device``'s platform: `CPU_COMPILER_OPTIONS` on a
  CPU whose XLA knows them, none elsewhere."""
  return dict(CPU_COMPILER_OPTIONS) if device.platform == "cpu" and _cpu_options_known() else None


@functools.cache
def _cpu_options_known() -> bool:
  try:
    x = jax.device_put(jnp.float32(0), jax.devices("cpu")[0])
    jax.jit(lambda x: x + 1, compiler_options=CPU_COMPILER_OPTIONS).lower(x).compile()
    return True
  except jax.errors.JaxRuntimeError as e:  # an XLA that no longer has the option
    log.warning("XLA:CPU options %s not applied: %s", CPU_COMPILER_OPTIONS, e)
    return False


def make_train_step(loss_fn: Callable, tx: optax.GradientTransformation, param_sh, opt_sh,
                    batch_sh: NamedSharding, frozen=frozenset()):
  """The jitted step of ``loss_fn``: gradients, optimizer update, and metrics (the loss, the
  gradient norm and ``loss_fn``'s counts); params and optimizer state are donated. Parameters
  named in ``frozen`` (those ``tx`` maps to zero updates) are held out of differentiation and
  come back as they went in, bit for bit."""
  replicated = NamedSharding(batch_sh.mesh, P())

  def loss(params, batch, rng):
    held = {k: jax.lax.stop_gradient(v) if k in frozen else v for k, v in params.items()}
    return loss_fn(held, batch, rng)

  def step(params, opt_state, batch, rng):
    (value, counts), grads = jax.value_and_grad(loss, has_aux=True)(params, batch, rng)
    updates, opt_state = tx.update(grads, opt_state, params)
    new = optax.apply_updates(params, updates)
    params = {k: params[k] if k in frozen else new[k] for k in params}
    return params, opt_state, {"loss": value, "grad_norm": global_norm(grads), **counts}

  return jax.jit(step, in_shardings=(param_sh, opt_sh, batch_sh, replicated),
                 out_shardings=(param_sh, opt_sh, replicated), donate_argnums=(0, 1),
                 compiler_options=compiler_options(batch_sh.mesh.devices.flat[0]))


def make_eval_step(fn: Callable, param_sh, batch_sh: NamedSharding, out_sh=None):
  """``fn(params, batch)`` jitted; outputs stay sharded like the batch unless ``out_sh`` says."""
  return jax.jit(fn, in_shardings=(param_sh, batch_sh),
                 out_shardings=batch_sh if out_sh is None else out_sh,
                 compiler_options=compiler_options(batch_sh.mesh.devices.flat[0]))


def opt_shardings(abstract_opt_state, param_shapes: dict, param_sh: dict, mesh):
  """Optimizer-state leaves that mirror a parameter (Adam moments) share its sharding."""
  replicated = NamedSharding(mesh, P())

  def pick(path, leaf):
    key = next((getattr(e, "key", None) for e in reversed(path) if hasattr(e, "key")), None)
    if key in param_sh and leaf.shape == param_shapes[key].shape:
      return param_sh[key]
    return replicated

  return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)
