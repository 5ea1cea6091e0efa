"""Intermediate x target sweeps (the grid of Phang et al. 2020): ``xtjax sweep``, ``xtjax report``.

    xtjax sweep --config configs/sweeps/phang2020.py:large [--config.KEY=VALUE ...] [--dry-run]
        [--shard I/N]
    xtjax report --sweep runs/sweeps/phang2020_large [--baseline none] [--out DIR]

A sweep config (``configs/sweeps/*.py``) holds ``sweep_dir``; ``run``, the run config every group
starts from (``{sweep_dir}`` in its strings is replaced); ``setup``, phases run once in
``<sweep_dir>/.setup`` before any group (the demo's generated assets; every shard runs them
unless finished, so start further shards once they are); ``intermediates``, setting name -> the
intermediate phase's settings (``task=`` or ``tasks=``, with its optim/train/data overrides;
None: no intermediate phase, the baseline); ``targets``, task -> recipe (``languages`` and
the train phase's optim/train/data overrides, or ``kind="retrieval"``: evaluated from the
intermediate encoder itself); and ``split``, the split every target is evaluated on ("dev", as
the paper's tables, or "test").

`expand` makes one run config (a group) per intermediate setting, run directory
``<sweep_dir>/<setting>``: its intermediate model is trained once and every target of the group
starts from it (tasks that share a model, XQuAD and MLQA, share its phase too). ``xtjax run``
semantics hold per group: finished phases are skipped, interrupted ones resume.

Optional axes within each group: ``variants``, name -> train-phase settings for every target
(``tuning``, ``prefix_length``, ... and optim/train/data overrides, with per-target ones under
``targets``): each target is trained once per variant (phases ``<task>_<variant>``, evaluations
labelled with the variant); ``few_shot`` (``k``: a tuple, ``seed``, ``languages`` per target,
``per_language``, optim/train overrides): after each target model, phases that continue it on k
examples per target language (one model per language, as Lauscher et al. 2020, or one for all)
and their evaluations, labelled ``k<k>`` (the zero-shot model ``k0``). ``report`` (``baseline``,
``baselines`` {row: row}) is written to ``<sweep_dir>/.report.json`` for ``xtjax report``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys

import jax
from absl import flags
from etils import epath
from ml_collections import ConfigDict

from xtjax.cmdline import configure_jax, innermost, parse_config
from xtjax.data.tasks import get_task
from xtjax.fit import Preempted
from xtjax.phase_config import parse_phases
from xtjax.report import REPORT_SPEC, write_report
from xtjax.runner import run_all
from xtjax.scaling import write_scaling

log = logging.getLogger(__name__)
SETUP_DIR = ".setup"  # a dot folder: xtjax.report does not read it
_TUNING_KEYS = ("tuning", "prefix_length", "prefix_projection", "prefix_hidden_size")
_SETTINGS = ("optim", "train", "data", "task_data")  # merged key by key across recipes
_TRAIN_KEYS = (*_SETTINGS, "dont_load", "head_map", *_TUNING_KEYS)
_FEW_SHOT_KEYS = ("k", "seed", "languages", "per_language", "optim", "train")


def _join(root: str, name: str) -> str:
  return f"{root.rstrip('/')}/{name}"


def _fill(c: ConfigDict, sweep_dir: str) -> None:
  """Replaces ``{sweep_dir}`` in the string values of ``c`` (tuples of strings too), in place."""
  fill = lambda v: v.replace("{sweep_dir}", sweep_dir) if isinstance(v, str) else v
  for key, value in c.items():
    if isinstance(value, ConfigDict):
      _fill(value, sweep_dir)
    elif isinstance(value, str) and "{sweep_dir}" in value:
      c[key] = fill(value)
    elif isinstance(value, tuple) and any(isinstance(v, str) and "{sweep_dir}" in v
                                          for v in value):
      c[key] = tuple(fill(v) for v in value)


def _run_config(sweep: ConfigDict, name: str, phases) -> ConfigDict:
  c = sweep.run.copy_and_resolve_references()
  c.run_dir = _join(sweep.sweep_dir, name)
  c.phases = ConfigDict(phases, sort_keys=False)  # phases run (and runs list) in sweep order
  _fill(c, sweep.sweep_dir.rstrip("/"))
  parse_phases(c)  # unknown keys, tasks or dependencies are errors before anything runs
  return c


def setup_config(sweep: ConfigDict) -> ConfigDict | None:
  """The run config of the sweep's ``setup`` phases (None if it has none)."""
  return _run_config(sweep, SETUP_DIR, sweep.setup.to_dict()) if len(sweep.setup) else None


def _merge(*recipes: dict) -> dict:
  """Later recipes override earlier ones; their optim/train/data/task_data key by key."""
  out: dict = {}
  for recipe in recipes:
    for key, value in (recipe or {}).items():
      out[key] = {**out.get(key, {}), **value} if key in _SETTINGS and value else value
  return out


def _check_keys(where: str, recipe: dict, keys) -> None:
  unknown = sorted(set(recipe) - set(keys))
  if unknown:
    raise ValueError(f"{where}: unknown key(s) {unknown}; use {', '.join(keys)}")


def _label(*parts: str) -> str:
  return "/".join(p for p in parts if p)


def _eval_languages(task: str, languages, split: str) -> tuple[str, ...]:
  """``languages`` that ``task`` has a ``split`` set in (on dev: UD-POS has 29 of XTREME's 33)."""
  return tuple(l for l in languages if l in get_task(task).split_languages(split)) \
      if split == "dev" else tuple(languages)


def _few_shot_phases(few_shot: dict, target: str, trained: str, model: str, recipe: dict,
                     languages, split: str, variant: str) -> dict:
  """Phases that continue phase ``model`` (which trained ``trained``) on ``few_shot``'s k
  examples per language of ``target``, and their evaluations."""
  _check_keys("few_shot", few_shot, _FEW_SHOT_KEYS)
  task = get_task(target)
  default = [l for l in languages if l != "en" and _has_few_shot(task, l)]
  langs = list((few_shot.get("languages") or {}).get(target, default))
  per_language = few_shot.get("per_language", True)
  groups = [(l,) for l in langs] if per_language else [tuple(langs)]
  base = _merge({k: v for k, v in recipe.items() if k in _SETTINGS or k in _TUNING_KEYS},
                {k: few_shot[k] for k in ("optim", "train") if k in few_shot})
  phases, suffix = {}, f"_{variant}" if variant else ""
  for k in few_shot["k"]:
    for group in groups:
      name = f"{target}{suffix}_k{k}" + (f"_{group[0]}" if per_language else "")
      batch = min(base.get("train", {}).get("batch_size", 32), k * len(group))
      phases[name] = dict(kind="train", task=target, init_from=model, **_merge(
          base, {"train": {"batch_size": batch}}), few_shot_k=k, few_shot_languages=group,
          few_shot_seed=few_shot.get("seed", 0), head_map={target: trained} if target != trained
          else {})
      phases[f"eval_{name}"] = dict(kind="eval", task=target, from_phase=name, split=split,
                                    languages=_eval_languages(target, group, split),
                                    data=base.get("data", {}), setting=_label(variant, f"k{k}"))
  return phases


def _has_few_shot(task, language: str) -> bool:
  try:
    task.few_shot_source(language)
    return True
  except ValueError:
    return False


def _target_phases(targets: ConfigDict, start: str, split: str, variants=None,
                   few_shot=None) -> dict:
  """The train and eval phases of every target (once per variant), the trained ones starting
  from phase ``start``, every evaluation on ``split`` (dev or test); with ``few_shot``, the
  phases that continue each target model on k examples per language."""
  phases = {}
  variants = variants or {"": {}}
  for target, recipe in targets.items():
    recipe = recipe.to_dict()
    kind = recipe.pop("kind", "train")
    if kind == "retrieval":
      if len(variants) > 1 or few_shot:
        raise ValueError(f"target {target}: retrieval targets read the intermediate encoder, the "
                         "same for every variant and k; give them in a sweep without variants "
                         "and few_shot")
      phases[f"eval_{target}"] = dict(kind="retrieval", task=target, from_phase=start,
                                      split=split, **recipe)
      continue
    if kind != "train":
      raise ValueError(f"target {target}: unknown kind {kind!r}; use train or retrieval")
    languages = recipe.pop("languages", ())
    _check_keys(f"target {target}", recipe, ("languages", *_TRAIN_KEYS))
    for variant, settings in variants.items():
      settings = dict(settings)
      per_target = (settings.pop("targets", None) or {}).get(target, {})
      _check_keys(f"variant {variant}", {**settings, **per_target}, _TRAIN_KEYS)
      merged = _merge(recipe, settings, per_target)
      trained = get_task(target).model_task or target
      name = f"{trained}_{variant}" if variant else trained
      phase = dict(kind="train", task=trained, init_from=start, dont_load=["heads/.*"], **merged)
      if phases.setdefault(name, phase) != phase:
        raise ValueError(f"target {target} shares the {trained} model with another target but "
                         f"sets other settings: give them the same recipe")
      setting = _label(variant, "k0" if few_shot else "")
      phases[f"eval_{target}{'_' + variant if variant else ''}"] = dict(
          kind="eval", task=target, from_phase=name, split=split,
          languages=_eval_languages(target, languages, split), data=merged.get("data", {}),
          setting=setting)
      if few_shot:
        phases.update(_few_shot_phases(few_shot, target, trained, name, merged, languages,
                                       split, variant))
  return phases


def expand(sweep: ConfigDict) -> list[ConfigDict]:
  """One run config per intermediate setting, in the sweep's order: phases ``pretrained``,
  ``intermediate`` (unless the setting is None), each target's train phase (from the intermediate
  model, fresh heads) and its ``eval_<task>`` phase, and the retrieval ``eval_<task>`` phases."""
  if not len(sweep.intermediates) or not len(sweep.targets):
    raise ValueError("a sweep needs at least one intermediate setting and one target")
  configs = []
  for name, settings in sweep.intermediates.items():
    if name.startswith(".") or "/" in name:
      raise ValueError(f"intermediate setting {name!r}: names are folder names, without '/' "
                       "or a leading '.'")
    phases = {"pretrained": dict(kind="pretrained")}
    if settings is not None:
      settings = settings.to_dict()
      if not settings.get("task") and not settings.get("tasks"):
        raise ValueError(f"intermediate setting {name}: give task= or tasks= (or None for no "
                         "intermediate phase)")
      phases["intermediate"] = {"kind": "train", "init_from": "pretrained",
                                "dont_load": ["heads/.*"], **settings}
    start = "intermediate" if settings is not None else "pretrained"
    split = sweep.get("split", "test")
    if split not in ("dev", "test"):
      raise ValueError(f"sweep split {split!r}: use dev or test")
    variants = sweep.variants.to_dict() if sweep.get("variants") else None
    few_shot = sweep.few_shot.to_dict() if sweep.get("few_shot") else None
    configs.append(_run_config(sweep, name, {**phases, **_target_phases(
        sweep.targets, start, split, variants, few_shot)}))
  return configs


def group_name(config: ConfigDict) -> str:
  """The intermediate setting of a run config of `expand`."""
  return config.run_dir.rstrip("/").rsplit("/", 1)[-1]


@dataclasses.dataclass(frozen=True)
class SweepRun:
  """One cell of the grid: the phases of its group that it needs, in order, and those it shares
  with other runs of the group, each with how many runs use it."""
  intermediate: str
  target: str
  phases: tuple[str, ...]
  shared: tuple[tuple[str, int], ...]
  setting: str = ""

  def describe(self) -> str:
    deps = ", ".join(f"{self.intermediate}/{p} (shared by {n} runs)" for p, n in self.shared)
    what = f"{self.intermediate}/{self.target}" + (f" [{self.setting}]" if self.setting else "")
    return f"{what}: phases {' -> '.join(self.phases)}" + (f"; depends on {deps}" if deps else "")


def group_runs(config: ConfigDict) -> list[SweepRun]:
  """The runs of one group: one per phase that no other phase starts from (an evaluation)."""
  phases = parse_phases(config)
  deps = {n: p.deps for n, p in phases.items()}
  order = list(phases)

  def needs(name: str) -> set[str]:
    return {name}.union(*(needs(d) for d in deps[name]))

  ends = [n for n in order if not any(n in d for d in deps.values())]
  closure = {end: needs(end) for end in ends}
  users = {n: frozenset(e for e in ends if n in closure[e]) for n in order}
  runs = []
  for end in ends:
    mine = [n for n in order if n in closure[end]]
    # Of the phases that other runs use too, the last one of each set of users.
    shared = [n for i, n in enumerate(mine) if len(users[n]) > 1
              and not any(users[m] == users[n] for m in mine[i + 1:])]
    runs.append(SweepRun(group_name(config), phases[end].task, tuple(mine),
                         tuple((n, len(users[n])) for n in shared),
                         getattr(phases[end], "setting", "")))
  return runs


def runs(sweep: ConfigDict) -> list[SweepRun]:
  """Every (intermediate, target) run of the sweep, group by group."""
  return [r for config in expand(sweep) for r in group_runs(config)]


def parse_shard(spec: str) -> tuple[int, int]:
  """``"I/N"`` -> (I, N) with 0 <= I < N."""
  index, _, count = spec.partition("/")
  if not (index.isdigit() and count.isdigit() and int(index) < int(count)):
    raise ValueError(f"--shard must be I/N with 0 <= I < N, e.g. 0/2; got {spec!r}")
  return int(index), int(count)


def shard(configs: list, index: int, count: int) -> list[tuple[int, ConfigDict]]:
  """(group index, config) of the groups of shard ``index`` of ``count``: index % count. A group
  is one intermediate setting, so no two shards train the same intermediate model."""
  return [(k, c) for k, c in enumerate(configs) if k % count == index]


def plan(sweep: ConfigDict, configs: list[ConfigDict], index: int = 0, count: int = 1) -> str:
  """The dry run: each group of the shard with its runs and their dependencies, then a summary."""
  lines = [f"sweep {sweep.sweep_dir}: {len(configs)} groups (one per intermediate setting)"]
  if count > 1:
    lines.append(f"shard {index}/{count}: groups "
                 f"{', '.join(str(k) for k, _ in shard(configs, index, count)) or 'none'}")
  setup = setup_config(sweep)
  if setup is not None:
    lines.append(f"setup: {', '.join(parse_phases(setup))} in {setup.run_dir}, once before the "
                 "groups")
  total = models = 0
  for k, config in shard(configs, index, count):
    settings = sweep.intermediates[group_name(config)]
    what = ("no intermediate phase" if settings is None else
            f"intermediate {'+'.join(settings.get('tasks') or [settings.task])}")
    lines.append(f"group {k} {group_name(config)} ({config.run_dir}): {what}")
    group = group_runs(config)
    lines += [f"  {r.describe()}" for r in group]
    total += len(group)
    models += "intermediate" in config.phases
  scope = f"{len(configs)} groups"
  if count > 1:
    scope = f"{len(shard(configs, index, count))} of {scope} (shard {index}/{count})"
  lines.append(f"{total} runs in {scope}; {models} intermediate models, each trained once")
  return "\n".join(lines)


def main_sweep(argv: list[str]) -> int:
  """``xtjax sweep`` (``argv``: the arguments after the command)."""

  def extra_flags(values):
    flags.DEFINE_bool("dry-run", False, "print the runs, run nothing", flag_values=values)
    flags.DEFINE_string("shard", "0/1", "run the groups whose index % N is I", flag_values=values)

  sweep, values = parse_config("sweep", ["xtjax sweep", *argv], extra_flags,
                               "configs/sweeps/phang2020.py")
  if sweep is None:
    return 2
  dry_run = values["dry-run"]
  try:
    index, count = parse_shard(values["shard"].value)
    configs = expand(sweep)
  except Exception as e:  # sweep errors
    sys.stderr.write(f"xtjax sweep: {innermost(e)}\n")
    return 2
  if dry_run.value:
    print(plan(sweep, configs, index, count))
    return 0
  configure_jax()
  write_spec(sweep)
  setup = setup_config(sweep)
  if setup is not None:
    run_all(setup)
  mine, failed = shard(configs, index, count), []
  for k, config in mine:
    log.info("sweep group %d/%d %s in %s", k, len(configs), group_name(config), config.run_dir)
    try:
      run_all(config)
    except Preempted as e:  # the machine is going away: stop here, a rerun resumes
      log.warning("%s; the sweep stops (rerun the same command to resume it)", e)
      return 0
    except Exception:  # one group's failure (e.g. missing data) does not stop the others
      log.exception("sweep group %s failed", group_name(config))
      failed.append(group_name(config))
  if failed:
    sys.stderr.write(f"xtjax sweep: {len(failed)} of {len(mine)} groups failed "
                     f"({', '.join(failed)}; see the log); run again to retry them, finished "
                     "phases are skipped\n")
    return 1
  return 0


def write_spec(sweep: ConfigDict) -> None:
  """``<sweep_dir>/.report.json``: the sweep config's ``report`` (baselines) for xtjax report."""
  if not sweep.get("report") or jax.process_index() != 0:
    return
  spec = sweep.report.to_dict()
  _check_keys("report", spec, ("baseline", "baselines"))
  root = epath.Path(sweep.sweep_dir)
  root.mkdir(parents=True, exist_ok=True)
  (root / REPORT_SPEC).write_text(json.dumps(spec, indent=2) + "\n")


def main_report(argv: list[str]) -> int:
  """``xtjax report --sweep DIR [--baseline NAME] [--out DIR]`` or ``--scaling DIR DIR ...``."""
  p = argparse.ArgumentParser(prog="xtjax report", description="the tables, CSVs and heatmaps of a "
                              "sweep's zero-shot scores against its baseline, per task and per "
                              "language; or, with --scaling, the gain from intermediate training "
                              "against model size over several sweeps")
  what = p.add_mutually_exclusive_group(required=True)
  what.add_argument("--sweep", help="sweep_dir of xtjax sweep")
  what.add_argument("--scaling", nargs="+", metavar="DIR",
                    help="sweep_dirs of one grid at several model sizes")
  p.add_argument("--baseline", default=None, help="the row deltas are against (default: the "
                 "sweep's report.baseline, else none)")
  p.add_argument("--out", default=None, help="output folder (default: the sweep folder; "
                 "--scaling: the first sweep's parent)")
  args = p.parse_args(argv)
  try:
    if args.scaling:
      report = write_scaling(args.scaling, args.out, args.baseline)
    else:
      report = write_report(args.sweep, args.out, args.baseline)
  except (ValueError, FileNotFoundError) as e:
    sys.stderr.write(f"xtjax report: {innermost(e)}\n")
    return 2
  print(report["summary"], end="")
  return 0
