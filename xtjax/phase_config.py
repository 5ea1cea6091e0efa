"""Typed phase configs: each entry of ``config.phases`` becomes a frozen dataclass of its kind,
built here and nowhere else, with the run's optim/train/data settings and the phase's overrides
merged and the ``{run_dir}`` paths resolved.

An unknown key (in the phase or in its optim/train/data overrides), an unknown task or language,
a missing dependency or a dependency cycle is a one-line error naming the phase and the closest
valid key, raised before any phase runs.
"""

from __future__ import annotations

import dataclasses
import difflib
from typing import Any, ClassVar, Mapping

import ml_collections
from etils import epath

from xtjax import scoring
from xtjax.data.tasks import RETRIEVAL_TASKS, check_languages, get_task, retrieval_languages

SETTINGS = ("optim", "train", "data")
PATH_KEYS = ("hub_mirror", "tfds_data_dir", "bucc_dir", "ccgbank_dir", "mewslix_dir",
             "lareqa_dir")
# Upstream's settings for the dual-encoder tasks (XLM-R large), between the run's settings and
# the phase's overrides.
DUAL_ENCODER_DEFAULTS = {
    # scripts/train_mewslix.sh: lr 1e-5, 8 per GPU x 4 accumulated, 2 epochs, warmup 0, weight
    # decay 0; third_party/run_retrieval_el.py: clip 1.0, eps 1e-8.
    "mewslix": dict(optim=dict(lr=1e-5, warmup=0, weight_decay=0.0, clip=1.0, eps=1e-8,
                               grad_accum_steps=4), train=dict(batch_size=32, epochs=2.0)),
    # scripts/train_lareqa.sh: lr 2e-5, 4 per GPU x 4 accumulated, 3 epochs, warmup 0, weight
    # decay 0; third_party/run_retrieval_qa.py: clip 1.0, eps 1e-8.
    "lareqa": dict(optim=dict(lr=2e-5, warmup=0, weight_decay=0.0, clip=1.0, eps=1e-8,
                              grad_accum_steps=4), train=dict(batch_size=16, epochs=3.0)),
}


def closest(key: str, valid) -> str:
  """`` (did you mean 'x'?)`` for the closest of ``valid``, or ""."""
  match = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.6)
  return f" (did you mean {match[0]!r}?)" if match else ""


@dataclasses.dataclass(frozen=True)
class Phase:
  """What every phase has: its name, what it runs after, and its resolved settings."""

  KIND: ClassVar[str] = ""
  SETTINGS: ClassVar[bool] = True  # takes optim/train/data overrides
  name: str = ""
  after: str | None = None
  optim: Any = None
  train: Any = None
  data: Any = None

  @property
  def kind(self) -> str:
    return self.KIND

  @property
  def deps(self) -> tuple[str, ...]:
    names = (self.after, getattr(self, "init_from", None), getattr(self, "from_phase", None))
    return tuple(d for d in names if d)


@dataclasses.dataclass(frozen=True)
class DemoAssetsPhase(Phase):
  """Generates the demo's data, tokenizer and model (``config.demo``) under ``run_dir/assets``."""
  KIND = "demo_assets"
  SETTINGS = False


@dataclasses.dataclass(frozen=True)
class PretrainedPhase(Phase):
  """Converts ``model.checkpoint`` (Hugging Face) into the phase's orbax checkpoint."""
  KIND = "pretrained"
  SETTINGS = False


TUNINGS = ("full", "prefix")


@dataclasses.dataclass(frozen=True)
class TrainPhase(Phase):
  """Trains ``task`` (or ``tasks`` together, a head each) from phase ``init_from``: parameters
  matching ``dont_load`` regexes start fresh, ``head_map`` {head: source head} carries heads over,
  ``task_data`` {task: data overrides} sets per-task data settings.

  ``tuning``: "full" fine-tunes every parameter; "prefix" trains only deep prompts
  (``prefix_length`` P per layer; ``prefix_projection``: P-tuning v2's reparameterisation MLP of
  ``prefix_hidden_size`` units) and the heads, on the frozen encoder of ``init_from``; its
  checkpoints hold only those. Defaults: MPT's (salesforce/MPT arguments.py lines 158-169:
  no projection, 512 units; P = 16 as its PAWS-X, UD-POS and SQuAD runs, README.md).

  ``few_shot_k`` > 0 trains on k examples of each of ``few_shot_languages`` instead of the
  task's English training set (Lauscher et al. 2020), drawn with ``few_shot_seed`` from that
  language's train split where the task has one, else its dev split (`Task.few_shot_source`);
  evaluations of the model leave those examples out."""
  KIND = "train"
  task: str = ""
  tasks: tuple[str, ...] = ()
  init_from: str = ""
  dont_load: tuple[str, ...] = ()
  head_map: Mapping[str, str] = dataclasses.field(default_factory=dict)
  task_data: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  tuning: str = "full"
  prefix_length: int = 16
  prefix_projection: bool = False
  prefix_hidden_size: int = 512
  few_shot_k: int = 0
  few_shot_languages: tuple[str, ...] = ()
  few_shot_seed: int = 0

  @property
  def task_names(self) -> tuple[str, ...]:
    return tuple(self.tasks) or (self.task,)

  def data_for(self, task: str) -> ml_collections.ConfigDict:
    """The phase's data settings with ``task``'s own overrides."""
    data = self.data.as_configdict()
    data.update(dict(self.task_data.get(task, {})))
    return data


@dataclasses.dataclass(frozen=True)
class EvalPhase(Phase):
  """Zero-shot evaluation of ``task`` in ``languages`` (default: all) on ``split``, with the
  model phase ``from_phase`` selected; ``setting`` labels the result in sweep reports (a tuning
  mode, a few-shot k)."""
  KIND = "eval"
  task: str = ""
  from_phase: str = ""
  split: str = "test"
  languages: tuple[str, ...] = ()
  setting: str = ""


@dataclasses.dataclass(frozen=True)
class RetrievalPhase(Phase):
  """``task`` (Tatoeba, BUCC, Mewsli-X, LAReQA) from ``from_phase``'s encoder: pooled vectors of
  ``layer`` (1-based, 0 = embeddings; 0 also means the default n // 2 + 2) and of every layer of
  ``layers`` (a sweep, or "all"), texts cut at ``max_length`` tokens."""
  KIND = "retrieval"
  task: str = ""
  from_phase: str = ""
  languages: tuple[str, ...] = ()
  layer: int = 0
  layers: Any = ()
  pooling: str = "mean"
  include_special: bool = True
  max_length: int = 512  # XTREME's and jiant's retrieval length
  split: str = "test"  # BUCC: "dev" scores the threshold's own split, as jiant's grid
  setting: str = ""  # the result's label in sweep reports


@dataclasses.dataclass(frozen=True)
class DualEncoderPhase(Phase):
  """Fine-tunes phase ``init_from``'s encoder as a dual encoder on ``task``'s pairs (Mewsli-X,
  LAReQA), texts lower-cased with ``lower_case`` as upstream's scripts."""
  KIND = "dual_encoder"
  task: str = ""
  init_from: str = ""
  lower_case: bool = True


PHASE_TYPES = {cls.KIND: cls for cls in (DemoAssetsPhase, PretrainedPhase, TrainPhase, EvalPhase,
                                         RetrievalPhase, DualEncoderPhase)}
_REQUIRED = {"train": ("init_from",), "eval": ("task", "from_phase"),
             "retrieval": ("task", "from_phase"), "dual_encoder": ("task", "init_from")}


def run_dir(config) -> epath.Path:
  """The run directory; absolute when local (orbax needs it), gs:// paths as they are."""
  path = epath.Path(config.run_dir)
  return path if "://" in config.run_dir else path.absolute()


def resolve_paths(data: ml_collections.ConfigDict, directory) -> ml_collections.ConfigDict:
  """Replaces ``{run_dir}`` in the data paths (and MLM sources) of ``data``, in place."""
  path = lambda v: v.replace("{run_dir}", str(directory)) if isinstance(v, str) else v
  for key in PATH_KEYS:
    data[key] = path(data[key])
  data.mlm_sources = tuple(path(s) for s in data.mlm_sources)
  return data


def settings(config, name: str, overrides: Mapping, defaults: Mapping = {}) -> dict:
  """optim, train and data: the run's, then ``defaults``, then the phase's ``overrides``."""
  out = {}
  for group in SETTINGS:
    base = config[group].copy_and_resolve_references()
    for source in (defaults.get(group) or {}, overrides.get(group) or {}):
      for key in source:
        if key not in base:
          raise ValueError(f"phase {name}: unknown {group} key {key!r}{closest(key, base)}; "
                           f"{group} has {', '.join(base)}")
      base.update(dict(source))
    out[group] = base
  resolve_paths(out["data"], run_dir(config))
  return out


def _plain(value):
  if isinstance(value, ml_collections.ConfigDict):
    return {k: _plain(v) for k, v in value.items()}
  if isinstance(value, list):
    return tuple(value)
  return value


def parse_phase(config, name: str, entry) -> Phase:
  """The typed phase of ``config.phases[name]``."""
  entry = {k: _plain(v) for k, v in dict(entry).items()}
  kind = entry.pop("kind", None)
  if kind not in PHASE_TYPES:
    raise ValueError(f"phase {name}: unknown kind {kind!r}{closest(str(kind), PHASE_TYPES)}; "
                     f"use one of {', '.join(PHASE_TYPES)}")
  cls = PHASE_TYPES[kind]
  fields = phase_fields(kind)
  for key in entry:
    if key not in fields:
      raise ValueError(f"phase {name}: unknown key {key!r}{closest(key, fields)}; a {kind} "
                       f"phase takes kind, {', '.join(fields)}")
  missing = [k for k in _REQUIRED.get(kind, ()) if not entry.get(k)]
  if kind in ("train",) and not (entry.get("task") or entry.get("tasks")):
    missing.insert(0, "task (or tasks)")
  if missing:
    raise ValueError(f"phase {name}: a {kind} phase needs {', '.join(missing)}")
  overrides = {g: entry.pop(g, None) or {} for g in SETTINGS}
  defaults = DUAL_ENCODER_DEFAULTS.get(entry.get("task"), {}) if kind == "dual_encoder" else {}
  resolved = settings(config, name, overrides, defaults)
  for key in ("tasks", "dont_load", "languages", "few_shot_languages"):
    if isinstance(entry.get(key), str):
      entry[key] = (entry[key],)
  phase = cls(name=name, **entry, **{g: ml_collections.FrozenConfigDict(v)
                                      for g, v in resolved.items()})
  _check_tasks(phase)
  return phase


def _check_tasks(phase: Phase) -> None:
  """Tasks, languages and task-data keys of ``phase`` exist (one-line errors)."""
  where = f"phase {phase.name}"
  try:
    if isinstance(phase, TrainPhase):
      for task in phase.task_names:
        get_task(task)
      _check_tuning(phase)
      for task, overrides in phase.task_data.items():
        if task not in phase.task_names:
          raise ValueError(f"task_data names {task!r}, which the phase does not train "
                           f"({', '.join(phase.task_names)})")
        for key in overrides:
          if key not in phase.data:
            raise ValueError(f"unknown data key {key!r}{closest(key, phase.data)} in "
                             f"task_data.{task}")
    elif isinstance(phase, EvalPhase):
      check_languages(get_task(phase.task), phase.languages, phase.split)
    elif isinstance(phase, RetrievalPhase):
      if phase.task not in RETRIEVAL_TASKS:
        raise ValueError(f"unknown retrieval task {phase.task!r}{closest(phase.task, RETRIEVAL_TASKS)}"
                         f": use {', '.join(RETRIEVAL_TASKS)}")
      known = retrieval_languages(phase.task)
      unknown = [l for l in phase.languages if l not in known]
      if unknown:
        raise ValueError(f"unknown language(s) {unknown} for {phase.task}: it has "
                         f"{', '.join(known)}")
    elif isinstance(phase, DualEncoderPhase) and phase.task not in DUAL_ENCODER_DEFAULTS:
      raise ValueError(f"unknown dual_encoder task {phase.task!r}: use "
                       f"{', '.join(DUAL_ENCODER_DEFAULTS)}")
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None


def _check_tuning(phase: TrainPhase) -> None:
  """Tuning mode, prefix sizes and few-shot settings of a train phase (one-line errors)."""
  if phase.tuning not in TUNINGS:
    raise ValueError(f"unknown tuning {phase.tuning!r}{closest(phase.tuning, TUNINGS)}: use "
                     f"{' or '.join(TUNINGS)}")
  if phase.prefix_length < 0 or phase.prefix_hidden_size < 1:
    raise ValueError(f"prefix_length {phase.prefix_length} and prefix_hidden_size "
                     f"{phase.prefix_hidden_size}: give a length >= 0 and a size >= 1")
  if phase.few_shot_k < 0:
    raise ValueError(f"few_shot_k {phase.few_shot_k}: give k >= 0 (0: the task's training set)")
  if phase.few_shot_k:
    if len(phase.task_names) != 1:
      raise ValueError("few_shot_k trains one task: give task=, not tasks=")
    if not phase.few_shot_languages:
      raise ValueError("few_shot_k needs few_shot_languages, e.g. ('de',) (one model per "
                       "language as Lauscher et al. 2020, or several pooled)")
    task = get_task(phase.task_names[0])
    for language in phase.few_shot_languages:
      task.few_shot_source(language)


def _check_bridges(phases: Mapping[str, Phase]) -> None:
  """A phase that trains the whole encoder cannot start from a prefix phase: its checkpoints
  hold prompts and heads only."""
  prefix = {n for n, p in phases.items() if isinstance(p, TrainPhase) and p.tuning == "prefix"}
  for name, phase in phases.items():
    start = getattr(phase, "init_from", "")
    if start in prefix and not (isinstance(phase, TrainPhase) and phase.tuning == "prefix"):
      raise ValueError(f"phase {name} fine-tunes the whole encoder but starts from prefix phase "
                       f"{start}, whose prompts it would drop: start it from "
                       f"{start}'s init_from, or give it tuning='prefix'")


def parse_phases(config) -> dict[str, Phase]:
  """Every phase of ``config``, typed and checked, in the order they run (each after the
  phases it depends on)."""
  phases = {name: parse_phase(config, name, entry) for name, entry in config.phases.items()}
  _check_bridges(phases)
  return {name: phases[name] for name in phase_order(phases)}


def phase_fields(kind: str) -> tuple[str, ...]:
  """The keys a phase of ``kind`` takes besides ``kind`` (an error naming the kinds)."""
  if kind not in PHASE_TYPES:
    raise ValueError(f"unknown phase kind {kind!r}{closest(str(kind), PHASE_TYPES)}; use one of "
                     f"{', '.join(PHASE_TYPES)}")
  cls = PHASE_TYPES[kind]
  return tuple(f.name for f in dataclasses.fields(cls) if f.name != "name"
               and (cls.SETTINGS or f.name not in SETTINGS))


def phase_default(kind: str, key: str):
  """The default of key ``key`` of a ``kind`` phase."""
  field = {f.name: f for f in dataclasses.fields(PHASE_TYPES[kind])}[key]
  return field.default_factory() if field.default is dataclasses.MISSING else field.default


def phase_order(phases: Mapping[str, Phase]) -> list[str]:
  """Names sorted so that each phase runs after those it starts from (init_from, from_phase,
  after); unknown dependencies and cycles are errors."""
  for name, phase in phases.items():
    for dep in phase.deps:
      if dep not in phases:
        raise ValueError(f"phase {name} depends on unknown phase {dep!r}{closest(dep, phases)}: "
                         f"the config has {', '.join(phases)}")
  order: list[str] = []

  def visit(name, stack=()):
    if name in stack:
      raise ValueError(f"phases depend on each other in a cycle: {' -> '.join(stack + (name,))}")
    if name not in order:
      for dep in phases[name].deps:
        visit(dep, stack + (name,))
      order.append(name)

  for name in phases:
    visit(name)
  return order


def benchmark_languages(benchmark: str, task: str) -> list[str]:
  """The languages ``benchmark`` scores ``task`` in (an error naming the benchmark's tasks)."""
  if benchmark not in scoring.TASK_LANGUAGES:
    raise ValueError(f"unknown benchmark {benchmark!r}: use {', '.join(scoring.TASK_LANGUAGES)}")
  langs = scoring.TASK_LANGUAGES[benchmark].get(task)
  if langs is None:
    raise ValueError(f"task {task!r} is not part of {benchmark}: it has "
                     f"{', '.join(scoring.TASK_LANGUAGES[benchmark])}")
  return list(langs)
