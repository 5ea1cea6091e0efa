"""Pure train and eval steps, jitted with explicit shardings and donated state.

``train_step(params, opt_state, batch, rng) -> (params, opt_state, metrics)`` and
``eval_step(params, batch) -> logits``. Batches carry ``example_mask`` (0 for padding rows), so a
padded last batch changes nothing; tagging and MLM labels use -100 for positions without a label.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec as P

from xtjax.params import Model

IGNORE = -100


def _xent(logits, labels, weights):
  """Mean cross-entropy over positions with weight > 0; labels < 0 count as weight 0."""
  valid = (labels >= 0) & (weights > 0)
  losses = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
  correct = (jnp.argmax(logits, -1) == labels) & valid
  n = valid.sum()
  return (jnp.where(valid, losses, 0.0).sum() / jnp.maximum(n, 1),
          {"correct": correct.sum(), "count": n})


def loss_fn(kind: str, logits, batch):
  """Loss and count metrics for a head kind; see `xtjax.models.heads`."""
  mask = batch["example_mask"]
  if kind in ("classification", "multiple_choice"):
    return _xent(logits, batch["label"], mask)
  if kind in ("token_classification", "masked_lm"):
    return _xent(logits, batch["labels"], mask[:, None] * batch["attention_mask"])
  if kind == "question_answering":
    ls, ms = _xent(logits[..., 0], batch["start_position"], mask)
    le, me = _xent(logits[..., 1], batch["end_position"], mask)
    return (ls + le) / 2, {k: ms[k] + me[k] for k in ms}
  raise ValueError(f"no loss for head kind {kind!r}")


def make_train_step(model: Model, tx: optax.GradientTransformation, task: str, kind: str,
                    param_sh, opt_sh, batch_sh: NamedSharding):
  """The jitted step for one task; params and optimizer state are donated."""
  replicated = NamedSharding(batch_sh.mesh, P())

  def step(params, opt_state, batch, rng):
    def loss(p):
      logits = model.bind(p)(batch, task=task, rng=rng)
      return loss_fn(kind, logits, batch)

    (value, counts), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    return params, opt_state, {"loss": value, "grad_norm": optax.tree.norm(grads), **counts}

  return jax.jit(step, in_shardings=(param_sh, opt_sh, batch_sh, replicated),
                 out_shardings=(param_sh, opt_sh, replicated), donate_argnums=(0, 1))


def make_eval_step(model: Model, task: str, param_sh, batch_sh: NamedSharding):
  """The jitted forward pass for one task; logits stay sharded like the batch."""
  def step(params, batch):
    return model.bind(params)(batch, task=task)

  return jax.jit(step, in_shardings=(param_sh, batch_sh), out_shardings=batch_sh)


def opt_shardings(abstract_opt_state, param_shapes: dict, param_sh: dict, mesh):
  """Optimizer-state leaves that mirror a parameter (Adam moments) share its sharding."""
  replicated = NamedSharding(mesh, P())

  def pick(path, leaf):
    key = next((getattr(e, "key", None) for e in reversed(path) if hasattr(e, "key")), None)
    if key in param_sh and leaf.shape == param_shapes[key].shape:
      return param_sh[key]
    return replicated

  return jax.tree_util.tree_map_with_path(pick, abstract_opt_state)
