"""Orbax checkpoints of a phase, verified on restore, and the `dont_load` merge that starts one
phase from another.

Each saved step holds ``params`` (the flat parameter dict), ``opt_state``, ``data`` (the grain
iterator position) and ``meta`` (step, dev-metric history, resolved config, and ``checksums``: a
64-bit digest of every saved array, computed on device from the arrays handed to orbax).
`PhaseCheckpoints.restore` compares the arrays it reads with them, so damaged files are an error
instead of silently different numbers; `PhaseCheckpoints.restore_latest` goes back past every step
that fails to restore or verify, reports each in one log line and moves it to
``damaged_checkpoints/`` beside ``checkpoints/`` (so training can write that step again).

Retention keeps the latest ``keep`` steps, the best step by the selection metric and the last step
verified in this process, so neither resuming nor model selection can lose the checkpoint it needs.
The temporary directory of a save that never finished (a killed run) is replaced when the resumed
run saves that step again (orbax's own clean-up on opening is off: it races with a save still
finishing in the same process, as after an interrupt in a notebook).
"""

from __future__ import annotations

import collections
import logging
import re
import time
from typing import Any, Iterable

import grain
import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from etils import epath
from jax.experimental import multihost_utils
from orbax.checkpoint import checkpoint_managers as policies

from xtjax.diskspace import disk_errors

log = logging.getLogger(__name__)
_UINT = {1: jnp.uint8, 2: jnp.uint16, 4: jnp.uint32, 8: jnp.uint32}


class DamagedCheckpointError(ValueError):
  """A saved step that cannot be read back, or reads back different from what was saved."""


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


def _digest(x) -> jax.Array:
  """Two wrapping 32-bit sums over the bits of ``x``, one weighted by position and one of the bits
  mixed with their position: flipped, swapped or zeroed bytes change them, and they are the same
  however ``x`` is sharded."""
  x = jnp.asarray(x)
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    x = x.astype(jnp.uint8)
  bits = jax.lax.bitcast_convert_type(x, _UINT[x.dtype.itemsize]).astype(jnp.uint32)
  index, stride = jnp.zeros(bits.shape, jnp.uint32), 1
  for dim in reversed(range(bits.ndim)):
    position = jax.lax.broadcasted_iota(jnp.uint32, bits.shape, dim)
    index = index + position * jnp.uint32(stride % 2**32)
    stride *= bits.shape[dim]
  mixed = bits ^ (index * jnp.uint32(0x9E3779B9))
  for shift, factor in ((16, 0x85EBCA6B), (13, 0xC2B2AE35)):
    mixed = (mixed ^ (mixed >> shift)) * jnp.uint32(factor)
  mixed = mixed ^ (mixed >> 16)
  return jnp.stack([jnp.sum(bits * (2 * index + 1), dtype=jnp.uint32),
                    jnp.sum(mixed, dtype=jnp.uint32)])


_digests = jax.jit(lambda leaves: [_digest(x) for x in leaves])


def checksums(tree) -> dict[str, str]:
  """``{path: "dtype[shape]:digest"}`` for every array leaf of ``tree`` (paths joined by "/")."""
  flat = jax.tree_util.tree_flatten_with_path(tree)[0]
  groups = collections.defaultdict(list)  # one jit call per device set
  for i, (_, leaf) in enumerate(flat):
    devices = leaf.sharding.device_set if isinstance(leaf, jax.Array) else ()
    groups[tuple(sorted(d.id for d in devices))].append(i)
  values = {}
  for indices in groups.values():
    for i, v in zip(indices, jax.device_get(_digests([flat[i][1] for i in indices]))):
      values[i] = v
  out = {}
  for i, (path, leaf) in enumerate(flat):
    kind = f"{jnp.dtype(leaf.dtype).name}{list(np.shape(leaf))}".replace(" ", "")
    out[jax.tree_util.keystr(path, simple=True, separator="/")] = \
        f"{kind}:{int(values[i][0]):08x}{int(values[i][1]):08x}"
  return out


def _mismatches(item: str, saved: dict, restored) -> list[str]:
  """Leaves of ``restored`` whose digest differs from ``saved`` (leaves restored with another
  dtype or shape than they were saved with cannot be compared and are skipped)."""
  bad = []
  for key, digest in checksums(restored).items():
    want = saved.get(key)
    if want is not None and want.split(":")[0] == digest.split(":")[0] and want != digest:
      bad.append(f"{item} {key}")
  return bad


def _first_line(e: BaseException) -> str:
  while e.__cause__ is not None:
    e = e.__cause__
  line = next((l.strip() for l in str(e).splitlines() if l.strip()), "")
  return f"{type(e).__name__}: {line[:200]}"


def _everywhere(ok: bool) -> bool:
  """True when ``ok`` holds on every process (each process reads only its own shards)."""
  if jax.process_count() == 1:
    return ok
  return bool(np.all(multihost_utils.process_allgather(np.asarray(ok))))


class _KeepVerified:
  """Preserves the step that the owning PhaseCheckpoints last read back intact."""

  def __init__(self, owner: "PhaseCheckpoints"):
    self.owner = owner

  def should_preserve(self, checkpoints, *, context) -> list[bool]:
    del context
    return [c.step == self.owner.verified_step for c in checkpoints]


class PhaseCheckpoints:
  """An async orbax CheckpointManager for one phase directory, with verified restores."""

  def __init__(self, directory, *, keep: int = 2, select_metric: str | None = None,
               select_mode: str = "max", async_save: bool = True):
    self.verified_step: int | None = None
    keep_policies = [policies.LatestN(keep), _KeepVerified(self)]
    if select_metric:
      keep_policies.append(policies.BestN(
          get_metric_fn=lambda m: m[select_metric], n=1, reverse=select_mode == "min",
          keep_checkpoints_without_metrics=False))
    self.manager = ocp.CheckpointManager(
        directory, handler_registry=_registry(), options=ocp.CheckpointManagerOptions(
            enable_async_checkpointing=async_save,
            preservation_policy=policies.AnyPreservationPolicy(keep_policies)))
    self.directory = epath.Path(self.manager.directory)

  def latest_step(self) -> int | None:
    """The newest saved step (not yet verified: `restore_latest` verifies and falls back)."""
    return self.manager.latest_step()

  def save(self, step: int, params, opt_state=None, data_iter=None, *, meta: dict,
           metrics: dict | None = None, force: bool = False) -> None:
    """Saves asynchronously; ``meta`` gets the checksums of ``params`` and ``opt_state``."""
    sums = {"params": checksums(params)}
    items = dict(params=ocp.args.PyTreeSave(params))
    if opt_state is not None:
      sums["opt_state"] = checksums(opt_state)
      items["opt_state"] = ocp.args.PyTreeSave(opt_state)
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointSave(data_iter)
    items["meta"] = ocp.args.JsonSave(dict(meta, checksums=sums))
    with disk_errors(self.directory, f"checkpoint step {step}"):
      self.manager.save(step, args=ocp.args.Composite(**items), metrics=metrics, force=force)

  def meta(self, step: int) -> dict:
    return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"]

  def param_shapes(self, step: int) -> dict[str, Any]:
    return dict(self.manager.item_metadata(step)["params"])

  def restore(self, step: int, abstract_params: dict, abstract_opt=None, data_iter=None):
    """Parameters (only the keys of ``abstract_params``), optimizer state and iterator position,
    verified against the step's checksums.

    Raises DamagedCheckpointError (one line) if the step cannot be read or reads back different
    from what was saved, and ValueError if it does not hold ``abstract_params``' shapes.
    """
    where = f"checkpoint step {step} in {self.directory}"
    try:
      saved = self.meta(step).get("checksums", {})
      shapes = self.param_shapes(step)
    except Exception as e:  # missing or truncated files fail in tensorstore, json, orbax alike
      raise DamagedCheckpointError(f"{where} cannot be read: {_first_line(e)}") from e
    unfit = [f"{k}: model {tuple(v.shape)} vs checkpoint "
             f"{tuple(shapes[k].shape) if k in shapes else 'missing'}"
             for k, v in abstract_params.items()
             if k not in shapes or tuple(shapes[k].shape) != tuple(v.shape)]
    if unfit:
      raise ValueError(f"{where} does not fit the model ({'; '.join(unfit[:4])}): did the model "
                       "config change since it was saved?")
    items = dict(params=ocp.args.PyTreeRestore(
        item=abstract_params, restore_args=ocp.checkpoint_utils.construct_restore_args(
            abstract_params), partial_restore=True))
    if abstract_opt is not None:
      items["opt_state"] = ocp.args.PyTreeRestore(
          item=abstract_opt, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract_opt))
    if data_iter is not None:
      items["data"] = grain.checkpoint.CheckpointRestore(data_iter)
    try:
      restored = self.manager.restore(step, args=ocp.args.Composite(**items))
    except Exception as e:
      raise DamagedCheckpointError(f"{where} cannot be read: {_first_line(e)}") from e
    bad = [b for item in ("params", "opt_state") if item in items and item in saved
           for b in _mismatches(item, saved[item], restored[item])]
    if bad:
      raise DamagedCheckpointError(f"{where} reads back different from what was saved "
                                   f"({', '.join(bad[:4])}{' ...' if len(bad) > 4 else ''})")
    return restored

  def restore_latest(self, abstract_params: dict, abstract_opt=None, data_iter=None):
    """(step, restored items, meta) of the newest step that restores and verifies, or None if
    there is none; each step that fails is logged in one line and moved aside."""
    for step in sorted(self.manager.all_steps(), reverse=True):
      try:
        restored, error = self.restore(step, abstract_params, abstract_opt, data_iter), None
      except DamagedCheckpointError as e:
        restored, error = None, e
      if _everywhere(error is None):
        self.verified_step = step
        return step, restored, self.meta(step)
      self._set_aside(step, str(error) if error else
                      f"checkpoint step {step} in {self.directory} failed on another process")
    return None

  def _set_aside(self, step: int, reason: str) -> None:
    """Moves a damaged step out of the manager's directory (all processes agree on it)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = self.directory.parent / "damaged_checkpoints" / f"{step}-{stamp}"
    if jax.process_index() == 0:
      target.parent.mkdir(parents=True, exist_ok=True)
      (self.directory / str(step)).rename(target)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"xtjax set aside step {step}")
    self.manager.reload()
    log.warning("%s; moved it to %s and going back to the previous step", reason, target)

  def wait(self) -> None:
    with disk_errors(self.directory, "checkpoint"):
      self.manager.wait_until_finished()

  def close(self) -> None:
    with disk_errors(self.directory, "checkpoint"):
      self.manager.close()


def plan_merge(source: dict, target: dict, *, dont_load: Iterable[str] = (),
               head_map: dict[str, str] | None = None,
               optional: Iterable[str] = ()) -> dict[str, str | None]:
  """For each target parameter, the source key it is loaded from, or None to keep its fresh init.

  ``source`` and ``target`` map keys to objects with ``.shape``. Targets matching a ``dont_load``
  regex stay fresh, and so do those matching an ``optional`` regex that the source lacks (the
  prompts of a prefix phase that starts from a model without them); ``head_map`` {target head:
  source head} carries a head across tasks (the MNLI head for XNLI). Any other missing or
  mis-shaped parameter, and any source encoder parameter the target does not use, is an error
  naming the parameters.
  """
  patterns = [re.compile(p) for p in dont_load]
  fresh_if_missing = [re.compile(p) for p in optional]
  head_map = dict(head_map or {})
  plan, missing, shapes = {}, [], []
  for key, value in target.items():
    if any(p.fullmatch(key) for p in patterns) or (
        key not in source and any(p.fullmatch(key) for p in fresh_if_missing)):
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


def load_merged(layers: list[tuple[PhaseCheckpoints, int]], shapes: dict, shardings: dict,
                init_fresh, *, dont_load=(), head_map=None, optional=()) -> tuple[dict, dict]:
  """Parameters for a model of ``shapes``: from the checkpoints ``layers`` [(checkpoints, step)],
  each parameter from the last one that holds it (a prefix phase's prompts and heads on top of
  its backbone's encoder), or from ``init_fresh(keys)`` for the keys that stay fresh (only those
  are initialised).

  Returns (params, plan); the plan records where each parameter came from.
  """
  held = [ckpt.param_shapes(step) for ckpt, step in layers]
  plan = plan_merge({k: v for h in held for k, v in h.items()}, shapes,
                    dont_load=dont_load, head_map=head_map, optional=optional)
  loaded = {}
  for i, (ckpt, step) in enumerate(layers):
    wanted = {src: jax.ShapeDtypeStruct(shapes[k].shape, shapes[k].dtype, sharding=shardings[k])
              for k, src in plan.items() if src is not None
              and not any(src in later for later in held[i + 1:]) and src in held[i]}
    if wanted:
      loaded.update(ckpt.restore(step, wanted)["params"])
  fresh = init_fresh([k for k, src in plan.items() if src is None])
  return {k: fresh[k] if src is None else loaded[src] for k, src in plan.items()}, plan
