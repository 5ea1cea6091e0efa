"""The optax optimizer of a training phase: AdamW with linear warmup and decay, as jiant and XTREME.

No weight decay on biases and LayerNorm; global-norm clipping; optional gradient accumulation
(`optax.MultiSteps`) and frozen parameters (``optim.freeze`` regexes, or everything outside the
prompts and heads of a prefix-tuning phase: `frozen_keys`), which `optax.partition` maps to
`optax.set_to_zero`, so they get no optimizer state.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import optax

from xtjax.reductions import global_norm


def schedule(lr: float, total_steps: int, warmup_steps: int) -> optax.Schedule:
  warmup_steps = max(0, min(warmup_steps, total_steps))
  return optax.join_schedules(
      [optax.linear_schedule(0.0, lr, warmup_steps),
       optax.linear_schedule(lr, 0.0, max(1, total_steps - warmup_steps))], [warmup_steps])


def warmup_steps(warmup: float, total_steps: int) -> int:
  """``warmup`` steps when it is at least 1 (XTREME's QA: 500), else that fraction of
  ``total_steps`` (jiant: 0.1)."""
  return int(warmup) if warmup >= 1 else int(round(warmup * total_steps))


def decays(name: str) -> bool:
  """Weight decay applies to kernels and embeddings, not to biases or LayerNorm scales."""
  return not name.endswith(("/bias", "/scale"))


def prompt_or_head(name: str) -> bool:
  """What a prefix-tuning phase trains: the deep prompts and the task heads."""
  return name.startswith(("encoder/prefix/", "heads/"))


def frozen_keys(param_names, freeze=(), trainable=None) -> frozenset[str]:
  """The parameters that get no updates: those matching a ``freeze`` regex and, given
  ``trainable`` (a predicate on names), every one it rejects."""
  patterns = [re.compile(p) for p in freeze]
  return frozenset(k for k in param_names if any(p.fullmatch(k) for p in patterns)
                   or (trainable is not None and not trainable(k)))


def clip_by_global_norm(max_norm: float) -> optax.GradientTransformation:
  """`optax.clip_by_global_norm` as one scale factor, ``min(1, max_norm / norm)`` (equal up to
  rounding): XLA fuses the product into AdamW's loops, where optax's select over
  ``(g / norm) * max_norm`` materialises the divided gradient (at XLM-R's 250k vocabulary a 512 MB
  array per step; benchmarks/README.md). The norm is `xtjax.reductions.global_norm`."""

  def update_fn(updates, state, params=None):
    del params
    norm = global_norm(updates)
    factor = jnp.where(norm < max_norm, 1.0, max_norm / norm)
    return jax.tree.map(lambda g: g * factor.astype(g.dtype), updates), state

  return optax.GradientTransformation(optax.init_empty_state, update_fn)


def make_optimizer(optim, total_steps: int, param_names,
                   frozen=None) -> optax.GradientTransformation:
  """``optim`` holds lr, warmup (steps, or a fraction of total_steps when < 1), weight_decay,
  b1, b2, eps, clip (global norm; 0 disables), grad_accum_steps and freeze (regexes);
  ``frozen``: the frozen parameter names (default: those ``optim.freeze`` matches)."""
  decay_mask = {k: decays(k) for k in param_names}
  lr = schedule(optim.lr, total_steps, warmup_steps(optim.warmup, total_steps))
  adamw = optax.adamw(lr, b1=optim.b1, b2=optim.b2,
                      eps=optim.eps, weight_decay=optim.weight_decay, mask=decay_mask)
  tx = optax.chain(clip_by_global_norm(optim.clip), adamw) if optim.clip else adamw
  if frozen is None:
    frozen = frozen_keys(param_names, optim.get("freeze", ()))
  if frozen:
    labels = {k: "frozen" if k in frozen else "trained" for k in param_names}
    if "trained" not in labels.values():
      raise ValueError(f"optim.freeze {list(optim.get('freeze', ()))} freezes every parameter: "
                       "nothing to train")
    tx = optax.partition({"trained": tx, "frozen": optax.set_to_zero()}, labels)
  if optim.grad_accum_steps > 1:
    tx = optax.MultiSteps(tx, every_k_schedule=optim.grad_accum_steps)
  return tx
