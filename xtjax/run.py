"""The run context every phase shares: config, typed phases, mesh and shardings, tokenizer, model
config, checkpoints, and the typed ``result.json`` each finished phase leaves for the next.

A run directory holds one folder per phase: ``checkpoints/`` (orbax), ``tensorboard/`` and
``result.json``; a phase whose result exists has finished.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
from etils import epath
from jax.experimental import multihost_utils

from xtjax import kinds
from xtjax import sharding as shd
from xtjax.checkpoint import PhaseCheckpoints, load_merged
from xtjax.diskspace import disk_errors
from xtjax.models.heads import TaskModel
from xtjax.models.loading import load_config, load_tokenizer
from xtjax.models.prefix import PrefixConfig
from xtjax.params import Model
from xtjax.phase_config import Phase, TrainPhase, parse_phases, resolve_paths, run_dir

PROMPTS = "encoder/prefix/.*"  # the deep prompts' parameters


@dataclasses.dataclass(frozen=True)
class PhaseResult:
  """What a finished phase hands on: the step later phases load (``selected_step``; None when it
  keeps no model), the tasks whose heads it trained, and everything else it reports
  (``details``, written beside them in ``result.json``)."""

  phase: str
  kind: str
  selected_step: int | None = None
  tasks: tuple[str, ...] = ()
  details: dict[str, Any] = dataclasses.field(default_factory=dict)

  def to_json(self) -> dict:
    return {"phase": self.phase, "kind": self.kind, "selected_step": self.selected_step,
            "tasks": list(self.tasks), **self.details}

  @classmethod
  def from_json(cls, value: dict) -> "PhaseResult":
    value = dict(value)
    return cls(phase=value.pop("phase"), kind=value.pop("kind"),
               selected_step=value.pop("selected_step", None),
               tasks=tuple(value.pop("tasks", ())), details=value)

  def __getitem__(self, key: str):
    """Reads a field or a detail by name (``result["dev_score"]``)."""
    return self.to_json()[key]


class Run:
  """Everything the phases of one run share: config, typed phases, mesh, shardings, tokenizer,
  model config."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.dir = run_dir(config)
    self.phases: dict[str, Phase] = parse_phases(config)
    self.mesh = shd.make_mesh(config.mesh)
    self.rules = [tuple(r) for r in config.sharding_rules]
    self.batch_sh = shd.batch_sharding(self.mesh, self.rules)
    self._tokenizer = self._model_source = None

  @property
  def hf_path(self):
    return self.model_source[0]

  @property
  def model_cfg(self):
    return self.model_source[1]

  @property
  def model_source(self):
    if self._model_source is None:
      self._model_source = load_config(self.path(self.config.model.checkpoint))
    return self._model_source

  @property
  def tokenizer(self):
    if self._tokenizer is None:
      self._tokenizer = load_tokenizer(self.path(self.config.model.tokenizer) or str(self.hf_path))
    return self._tokenizer

  @property
  def data(self) -> ml_collections.ConfigDict:
    """The run's data settings with ``{run_dir}`` in its paths resolved."""
    return resolve_paths(self.config.data.copy_and_resolve_references(), self.dir)

  def path(self, value: str | None) -> str | None:
    """Config paths may refer to the run directory as ``{run_dir}``."""
    return value.replace("{run_dir}", str(self.dir)) if value else value

  def model(self, tasks=(), phase: str | None = None) -> tuple[Model, dict]:
    """The model with a head per task of ``tasks`` (`xtjax.data.tasks.Task`s; none: the
    encoder alone) and, for a ``phase`` that prefix-tunes, its deep prompts; and its parameter
    shardings."""
    return self.model_with(kinds.head_specs(tasks), self.prefix(phase))

  def model_with(self, heads: dict[str, tuple[type, int]],
                 prefix: PrefixConfig | None = None) -> tuple[Model, dict]:
    """The model with ``heads`` {name: (head class, number of labels)} and ``prefix``, and its
    shardings."""
    dtype = jnp.dtype(self.config.model.dtype)
    model = Model.create(lambda rngs: TaskModel(self.model_cfg, heads, dtype=dtype,
                                                remat=self.config.model.remat, prefix=prefix,
                                                rngs=rngs))
    shardings = shd.param_shardings(model.shapes(), model.logical_axes(), self.mesh, self.rules)
    return model, shardings

  def init_params(self, model: Model, shardings: dict, seed: int, keys=None) -> dict:
    """Freshly initialised parameters (only ``keys``, if given: XLA skips the others' init)."""
    keys = list(shardings) if keys is None else list(keys)
    init = lambda rng: {k: v for k, v in model.init(rng).items() if k in keys}
    with jax.set_mesh(self.mesh):
      return jax.jit(init, out_shardings={k: shardings[k] for k in keys})(jax.random.key(seed))

  @classmethod
  def from_dir(cls, directory: str) -> "Run":
    """The run whose resolved config ``xtjax run`` saved in ``directory/config.json``."""
    path = epath.Path(directory) / "config.json"
    if not path.exists():
      raise FileNotFoundError(f"no run in {directory}: {path} is missing (give the run_dir of a "
                              "config that xtjax run has trained)")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    config.run_dir = str(directory)
    return cls(config)

  def checkpoints(self, name: str, **kw) -> PhaseCheckpoints:
    return PhaseCheckpoints(self.dir / name / "checkpoints", keep=self.config.train.keep,
                            async_save=self.config.train.async_checkpoints, **kw)

  def result(self, name: str) -> PhaseResult | None:
    path = self.dir / name / "result.json"
    return PhaseResult.from_json(json.loads(path.read_text())) if path.exists() else None

  def write_result(self, result: PhaseResult) -> None:
    """Process 0 writes ``result.json``; every process waits for it (the next phase reads it)."""
    if jax.process_index() == 0:
      folder = self.dir / result.phase
      with disk_errors(folder, f"phase {result.phase}'s result"):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "result.json").write_text(json.dumps(result.to_json(), indent=2) + "\n")
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f"xtjax result of {result.phase}")

  def prefix(self, phase: str | None) -> PrefixConfig | None:
    """The deep prompts of ``phase``'s model: its own if it is a train phase with
    ``tuning="prefix"`` and a prefix length, else none."""
    p = self.phases.get(phase) if phase else None
    if isinstance(p, TrainPhase) and p.tuning == "prefix" and p.prefix_length:
      return PrefixConfig(p.prefix_length, p.prefix_projection, p.prefix_hidden_size)
    return None

  def backbone(self, name: str) -> str:
    """The phase whose checkpoints hold ``name``'s frozen encoder: ``name`` itself, or for a
    prefix-tuning phase (whose checkpoints hold only its prompts and heads) its ``init_from``'s."""
    p = self.phases.get(name)
    if isinstance(p, TrainPhase) and p.tuning == "prefix":
      return self.backbone(p.init_from)
    return name

  def finished_step(self, name: str) -> int:
    """The selected step of finished phase ``name`` (an error if it has none)."""
    done = self.result(name)
    if done is None or done.selected_step is None:
      raise FileNotFoundError(f"phase {name!r} has not finished in {self.dir}: run it first "
                              f"(xtjax run runs phases in order)")
    return done.selected_step

  def trained_params(self, name: str, model: Model, shardings: dict, *, dont_load=(),
                     head_map=None, optional=(), fresh_seed: int = 0) -> tuple[dict, dict]:
    """Parameters for ``model`` from the selected step of finished phase ``name`` (on top of its
    backbone's for a prefix phase); those matching an ``optional`` regex start fresh if the
    phase lacks them (``PROMPTS``: a prefix phase's prompts)."""
    step = self.finished_step(name)
    names = [name] if self.backbone(name) == name else [self.backbone(name), name]
    recorded = (self.result(name).details.get("backbone") or {}).get("step")
    steps = [self.finished_step(n) for n in names[:-1]] + [step]
    if recorded is not None and recorded != steps[0]:
      raise ValueError(f"phase {name} was trained on step {recorded} of {names[0]}, which now "
                       f"selects step {steps[0]}: rerun {name}")
    layers = [(self.checkpoints(n), s) for n, s in zip(names, steps)]
    with jax.set_mesh(self.mesh):
      params, plan = load_merged(layers, model.shapes(), shardings,
                                 lambda keys: self.init_params(model, shardings, fresh_seed, keys),
                                 dont_load=dont_load, head_map=head_map, optional=optional)
    for ckpt, _ in layers:
      ckpt.close()
    return params, plan
