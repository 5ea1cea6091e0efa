"""Orbax checkpoints of a phase, and the `dont_load` merge that starts one phase from another.

Each saved step holds ``params`` (the flat parameter dict), ``opt_state``, ``data`` (the grain
iterator position) and ``meta`` (step, dev-metric history, resolved config). Retention keeps the
latest ``keep`` steps and the best step by the selection metric, so neither resuming nor model
selection can lose the checkpoint it needs.
"""

from __future__ import annotations

import re
from typing import Any, Iterable

import grain
import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


def _registry() -> ocp.handlers.DefaultCheckpointHandlerRegistry:
  """Handlers for every item, so a fresh manager can read metadata and partial items."""
  registry = ocp.handlers.DefaultCheckpointHandlerRegistry()
  for item, save, restore, handler in (
      ("params", ocp.args.PyTreeSave, ocp.args.PyTreeRestore, ocp.PyTreeCheckpointHandler),
      ("opt_state", ocp.args.PyTreeSave, ocp.args.PyTreeRestore, ocp.PyTreeCheckpointHandler),
      ("meta", ocp.args.JsonSave, ocp.args.JsonRestore, ocp.JsonCheckpointHandler),
      ("data", grain.checkpoint.CheckpointSave, grain.checkpoint.CheckpointRestore,
       grain.checkpoint.CheckpointHandler)):
    registry.add(item, save, handler())
    registry.add(item, restore, handler())
  return registry


class PhaseCheckpoints:
  """An async orbax CheckpointManager for one phase directory."""

  def __init__(self, directory, *, keep: int = 2, select_metric: str | None = None,
               select_mode: str = "max", async_save: bool = True):
    keep_policies = [policies.LatestN(keep)]
    if select_metric:
      keep_policies.append(policies.BestN(
          get_metric_fn=lambda m: m[select_metric], n=1, reverse=select_mode == "min",
          keep_checkpoints_without_metrics=False))
    self.manager = ocp.CheckpointManager(directory, handler_registry=_registry(), options=ocp.CheckpointManagerOptions(
        enable_async_checkpointing=async_save,
        preservation_policy=policies.AnyPreservationPolicy(keep_policies)))

  def latest_step(self) -> int | None:
    return self.manager.latest_step()

  def save(self, step: int, params, opt_state=None, data_iter=None, *, meta: dict,
           metrics: dict | None = None, force: bool = False) -> None:
    items = dict(params=ocp.args.PyTreeSave(params), meta=ocp.args.JsonSave(meta))
    if opt_state is not None:
      items["opt_state"] = ocp.args.PyTreeSave(opt_state)
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=force)

  def meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def param_shapes(self, step: int) -> dict[str, Any]:
    return dict(self.manager.item_metadata(step)["params"])

  def restore(self, step: int, abstract_params: dict, abstract_opt=None, data_iter=None):
    """Parameters (only the keys of ``abstract_params``), optimizer state and iterator position."""
    items = dict(params=ocp.args.PyTreeRestore(
        item=abstract_params, restore_args=ocp.checkpoint_utils.construct_restore_args(
            abstract_params), partial_restore=True))
    if abstract_opt is not None:
      items["opt_state"] = ocp.args.PyTreeRestore(
          item=abstract_opt, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_opt))
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    return self.manager.restore(step, args=ocp.args.Composite(**items))

  def wait(self) -> None:
    self.manager.wait_until_finished()

  def close(self) -> None:
    self.manager.close()


def plan_merge(source: dict, target: dict, *, dont_load: Iterable[str] = (),
               head_map: dict[str, str] | None = None) -> dict[str, str | None]:
  """For each target parameter, the source key it is loaded from, or None to keep its fresh init.

  ``source`` and ``target`` map keys to objects with ``.shape``. Targets matching a ``dont_load``
  regex stay fresh; ``head_map`` {target head: source head} carries a head across tasks (the MNLI
  head for XNLI). Any other missing or mis-shaped parameter, and any source encoder parameter the
  target does not use, is an error naming the parameters.
  """
  patterns = [re.compile(p) for p in dont_load]
  head_map = dict(head_map or {})
  plan, missing, shapes = {}, [], []
  for key, value in target.items():
    if any(p.fullmatch(key) for p in patterns):
      plan[key] = None
      continue
    src = key
    parts = key.split("/")
    if parts[0] == "heads" and parts[1] in head_map:
      src = "/".join(["heads", head_map[parts[1]], *parts[2:]])
    if src not in source:
      missing.append(key if src == key else f"{key} (from {src})")
    elif tuple(source[src].shape) != tuple(value.shape):
      shapes.append(f"{key}: checkpoint {tuple(source[src].shape)} vs model {tuple(value.shape)}")
    else:
      plan[key] = src
  unused = sorted(k for k in set(source) - set(plan.values()) if not k.startswith("heads/"))
  problems = []
  if missing:
    problems.append(f"missing from the checkpoint: {missing[:6]}{' ...' if len(missing) > 6 else ''}"
                    " (add a dont_load regex to initialise them fresh, or a head_map entry)")
  if shapes:
    problems.append(f"shape mismatches: {shapes[:6]}")
  if unused:
    problems.append(f"checkpoint parameters the model lacks: {unused[:6]}")
  if problems:
    raise ValueError("cannot start from the checkpoint: " + "; ".join(problems))
  return plan


def load_merged(ckpt: PhaseCheckpoints, step: int, shapes: dict, shardings: dict, init_fresh, *,
                dont_load=(), head_map=None) -> tuple[dict, dict]:
  """Parameters for a model of ``shapes``: from ``ckpt`` at ``step``, or from
  ``init_fresh(keys)`` for the keys that stay fresh (only those are initialised).

  Returns (params, plan); the plan records where each parameter came from.
  """
  plan = plan_merge(ckpt.param_shapes(step), shapes, dont_load=dont_load, head_map=head_map)
  wanted = {src: jax.ShapeDtypeStruct(shapes[k].shape, shapes[k].dtype, sharding=shardings[k])
            for k, src in plan.items() if src is not None}
  loaded = ckpt.restore(step, wanted)["params"] if wanted else {}
  fresh = init_fresh([k for k, src in plan.items() if src is None])
  return {k: fresh[k] if src is None else loaded[src] for k, src in plan.items()}, plan
