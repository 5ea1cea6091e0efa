"""The one training loop: `fit` runs any phase that trains, whatever its loss.

A phase hands `fit` its loss functions (``loss_fn(params, batch, rng) -> (loss, counts)``, one per
task index that its batches carry), a checkpointable batch iterator, how to initialise the
parameters, and how to score them on dev. `fit` owns everything else: resuming from the latest
checkpoint (data iterator included), device-side metrics fetched once per ``train.log_every``
steps, the NaN check, dev evaluation and checkpointing every ``train.eval_every`` steps, early
stopping after ``train.patience`` evaluations without improvement, the selected step (the
best dev score, or the last step with ``train.selection="last"``), and preemption: on SIGTERM
every process stops at the same step, saves it and raises `Preempted` (the rerun resumes there).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import time
from typing import Callable

import jax
import numpy as np
import tqdm
from tensorboardX import SummaryWriter

from xtjax import sharding as shd
from xtjax.diskspace import check_free_space, tree_bytes
from xtjax.preemption import PreemptionGuard
from xtjax.steps import make_train_step, opt_shardings

log = logging.getLogger(__name__)
SELECTIONS = ("best_dev", "last")


class Preempted(Exception):
  """The phase saved step ``step`` and stopped on a preemption signal; rerunning resumes it."""

  def __init__(self, phase: str, step: int):
    super().__init__(f"phase {phase} preempted: saved step {step}; rerun the same command to "
                     "resume from it")
    self.phase, self.step = phase, step


@dataclasses.dataclass(frozen=True)
class Fitted:
  """How training went: the step later phases load, and the dev history behind the choice."""

  steps: int
  steps_done: int
  selected_step: int
  dev_score: float
  dev: dict
  history: list
  loaded_from: dict

  def summary(self) -> dict:
    return dataclasses.asdict(self)


def start_or_resume(run, name: str, ckpt, shapes: dict, param_sh: dict, tx, data_iter, init,
                    saved=None):
  """(params, opt_state, opt shardings, start step, dev history, load plan): restored from the
  phase's latest intact checkpoint (data iterator included) if it was interrupted, else
  ``init()`` -> (params, plan) with a fresh optimizer state (after checking that the disk holds
  the phase's checkpoints). Checkpoints that hold only the ``saved`` parameters are completed
  from ``init()``."""
  opt_abstract = jax.eval_shape(tx.init, shapes)
  opt_sh = opt_shardings(opt_abstract, shapes, param_sh, run.mesh)
  saved = list(shapes) if saved is None else list(saved)
  if ckpt.latest_step() is not None:
    abstract = {k: jax.ShapeDtypeStruct(shapes[k].shape, shapes[k].dtype, sharding=param_sh[k])
                for k in saved}
    abstract_opt = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                opt_abstract, opt_sh)
    with jax.set_mesh(run.mesh):
      found = ckpt.restore_latest(abstract, abstract_opt, data_iter)
    if found is not None:
      step, restored, meta = found
      log.info("%s: resuming at step %d", name, step)
      params = restored["params"]
      if len(saved) < len(shapes):  # the rest (a prefix phase's backbone) as the phase began
        params = {**init()[0], **params}
      return params, restored["opt_state"], opt_sh, step, meta["history"], meta["plan"]
    log.warning("%s: no checkpoint restores intact; starting the phase afresh", name)
  keep = run.config.train.keep + 2  # the latest, the best, and one being written
  check_free_space(run.dir, keep * tree_bytes({k: shapes[k] for k in saved}, opt_abstract),
                   f"phase {name}'s checkpoints")
  params, plan = init()
  with jax.set_mesh(run.mesh):
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
  return params, opt_state, opt_sh, 0, [], plan


def fit(run, name: str, *, train, steps: int, accum: int, shapes: dict, param_sh: dict, tx,
        loss_fns: list[Callable], batches, init: Callable, evaluate: Callable | None,
        frozen=frozenset(), saved=None, meta: dict | None = None) -> Fitted:
  """Trains for ``steps`` optimizer steps of ``accum`` micro-batches each.

  ``batches`` yields this process's micro-batches with a ``task`` index into ``loss_fns``;
  ``init() -> (params, plan)`` starts a fresh phase; ``evaluate(params) -> (score, scores)``
  scores dev (None: the phase has no dev metric and keeps its last step). ``frozen`` parameters
  (those ``tx`` zeroes) stay bitwise as ``init`` gave them; checkpoints hold only the ``saved``
  parameters (default: all) and ``meta`` besides the phase's own record.
  """
  if train.get("selection", "best_dev") not in SELECTIONS:
    raise ValueError(f"phase {name}: unknown train.selection {train.selection!r}: use "
                     f"{' or '.join(SELECTIONS)}")
  ckpt = run.checkpoints(name, select_metric="dev_score")
  params, opt_state, opt_sh, start, history, plan = start_or_resume(
      run, name, ckpt, shapes, param_sh, tx, batches, init, saved)
  train_steps = [make_train_step(f, tx, param_sh, opt_sh, run.batch_sh, frozen)
                 for f in loss_fns]
  kept = list(shapes) if saved is None else list(saved)
  writer = SummaryWriter(os.fspath(run.dir / name / "tensorboard")) if jax.process_index() == 0 \
      else None
  base_rng = jax.random.key(run.config.seed + 1, impl=train.rng_impl)

  def save(step: int, metrics: dict | None) -> None:
    ckpt.save(step, {k: params[k] for k in kept}, opt_state, batches, metrics=metrics,
              meta={**(meta or {}), "phase": name, "step": step, "history": history,
                    "plan": plan, "config": run.config.to_dict()})

  def evaluate_and_save(step: int) -> float:
    score, scores = evaluate(params) if evaluate else (float(step), {})
    history.append({"step": step, "dev_score": score, "dev": scores})
    if writer:
      for key, value in _flatten(scores).items():
        writer.add_scalar(f"dev/{key}", value, step)
    save(step, {"dev_score": score})
    return score

  pending, t0, shapes_seen = [], time.time(), set()
  bar = tqdm.tqdm(range(start, steps), initial=start, total=steps, desc=name,
                  disable=jax.process_index() != 0, mininterval=2)
  with jax.set_mesh(run.mesh), PreemptionGuard() as guard:
    for step in bar:
      for micro in range(accum):
        local = next(batches)
        task = int(local.pop("task"))
        train_step = train_steps[task]
        if (task, local["input_ids"].shape) not in shapes_seen:  # data.train_buckets
          shapes_seen.add((task, local["input_ids"].shape))
          log.info("%s: compiling the train step for input_ids of shape %s (task index %d)",
                   name, local["input_ids"].shape, task)
        params, opt_state, metrics = train_step(
            params, opt_state, shd.global_batch(local, run.batch_sh),
            jax.random.fold_in(base_rng, step * accum + micro))
        pending.append(metrics)
      done = step + 1
      if done % train.log_every == 0 or done == steps:
        log_train_metrics(pending, done, name, accum, t0, bar, writer)
        pending, t0 = [], time.time()
      if done % train.eval_every == 0 or done == steps:
        if pending:  # never checkpoint parameters whose loss has not been checked
          flush_metrics(pending, done, name)
          pending = []
        bar.set_description(f"{name} dev {evaluate_and_save(done):.1f}")
        if stale_evals(history) >= train.patience > 0:
          log.info("%s: no dev improvement in %d evaluations; stopping at step %d", name,
                   train.patience, done)
          break
      if guard.should_stop(done) and done < steps:
        if pending:
          flush_metrics(pending, done, name)
        if not history or history[-1]["step"] != done:
          save(done, None)  # kept as the latest step, not a candidate for selection
        ckpt.wait()
        ckpt.close()
        if writer:
          writer.close()
        raise Preempted(name, done)
  ckpt.wait()
  kept_steps = set(ckpt.manager.all_steps())  # retention keeps the best; among ties, any kept
  ckpt.close()
  if writer:
    writer.close()
  if train.get("selection", "best_dev") == "last" or evaluate is None:
    best = history[-1]
  else:
    best = max((h for h in history if h["step"] in kept_steps),
               key=lambda h: (h["dev_score"], h["step"]))
  return Fitted(steps=steps, steps_done=history[-1]["step"], selected_step=best["step"],
                dev_score=best["dev_score"], dev=best["dev"], history=history, loaded_from=plan)


def _flatten(scores: dict, prefix: str = "") -> dict[str, float]:
  out = {}
  for key, value in scores.items():
    if isinstance(value, dict):
      out.update(_flatten(value, f"{prefix}{key}/"))
    else:
      out[f"{prefix}{key}"] = value
  return out


def stale_evals(history: list) -> int:
  """How many dev evaluations have passed since the best one (jiant's early-stopping count)."""
  best = max(range(len(history)), key=lambda i: (history[i]["dev_score"], -i))
  return len(history) - 1 - best


def log_train_metrics(pending: list, done: int, name: str, accum: int, t0: float, bar,
                      writer) -> dict:
  """Fetches and checks the step metrics since the last log, and shows and records them."""
  rate = len(pending) / accum / (time.time() - t0)
  logged = flush_metrics(pending, done, name)
  bar.set_postfix(loss=f"{logged['loss']:.3f}", acc=f"{logged['accuracy']:.1f}")
  if writer:
    for k, v in dict(logged, steps_per_second=rate).items():
      writer.add_scalar(f"train/{k}", v, done)
  return logged


def flush_metrics(pending: list, step: int, phase: str) -> dict:
  """Fetches the accumulated step metrics from the device (once per log interval)."""
  host = jax.device_get(pending)
  loss = float(np.mean([m["loss"] for m in host]))
  if not math.isfinite(loss):
    raise FloatingPointError(f"phase {phase}: loss is {loss} by step {step}; lower optim.lr, "
                             "enable optim.clip or check the data (no checkpoint was written for it)")
  count = sum(int(m["count"]) for m in host)
  return {"loss": loss, "accuracy": 100 * sum(int(m["correct"]) for m in host) / max(count, 1),
          "grad_norm": float(np.mean([m["grad_norm"] for m in host]))}
