"""The run: phases in order (pretrained -> intermediate -> target -> zero-shot eval), each bridged by
an orbax checkpoint under ``run_dir/<phase>``.

A finished phase (``result.json`` present) is skipped; an interrupted one resumes from its latest
checkpoint, including the data iterator position.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import tqdm
from etils import epath

from xtjax import sharding as shd
from xtjax.checkpoint import PhaseCheckpoints, load_merged
from xtjax.data import features as feats
from xtjax.data import outputs, pipeline
from xtjax.data.tasks import Task, get_task
from xtjax.evaluate import run_eval
from xtjax.models.heads import TaskModel
from xtjax.models.loading import load_config, load_tokenizer, read_hf_params
from xtjax.optim import make_optimizer
from xtjax.params import Model
from xtjax.steps import make_eval_step, make_train_step, opt_shardings

log = logging.getLogger(__name__)
PHASE_KINDS = ("demo_assets", "pretrained", "train", "eval", "retrieval", "dual_encoder")


class Run:
  """Everything the phases of one run share: config, mesh, shardings, tokenizer, model config."""

  def __init__(self, config: ml_collections.ConfigDict):
    self.config = config
    self.dir = epath.Path(config.run_dir)
    if "://" not in config.run_dir:  # orbax needs absolute local paths; gs:// stays as is
      self.dir = self.dir.absolute()
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
    """The data config with ``{run_dir}`` in its paths resolved."""
    return resolve_paths(self, self.config.data.copy_and_resolve_references())

  def path(self, value: str | None) -> str | None:
    """Config paths may refer to the run directory as ``{run_dir}``."""
    return value.replace("{run_dir}", str(self.dir)) if value else value

  def model(self, heads: dict) -> tuple[Model, dict]:
    dtype = jnp.dtype(self.config.model.dtype)
    model = Model.create(lambda rngs: TaskModel(self.model_cfg, heads, dtype=dtype,
                                                remat=self.config.model.remat, rngs=rngs))
    shardings = shd.param_shardings(model.shapes(), model.logical_axes(), self.mesh, self.rules)
    return model, shardings

  def init_params(self, model: Model, shardings: dict, seed: int, keys=None) -> dict:
    """Freshly initialised parameters (only ``keys``, if given: XLA skips the others' init)."""
    keys = list(shardings) if keys is None else list(keys)
    init = lambda rng: {k: v for k, v in model.init(rng).items() if k in keys}
    with jax.set_mesh(self.mesh):
      return jax.jit(init, out_shardings={k: shardings[k] for k in keys})(jax.random.key(seed))

  @classmethod
  def from_dir(cls, run_dir: str) -> "Run":
    """The run whose resolved config ``xtjax run`` saved in ``run_dir/config.json``."""
    path = epath.Path(run_dir) / "config.json"
    if not path.exists():
      raise FileNotFoundError(f"no run in {run_dir}: {path} is missing (give the run_dir of a "
                              "config that xtjax run has trained)")
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    config.run_dir = str(run_dir)
    return cls(config)

  def save_config(self) -> None:
    if jax.process_index() == 0:
      self.dir.mkdir(parents=True, exist_ok=True)
      (self.dir / "config.json").write_text(self.config.to_json_best_effort(indent=2) + "\n")

  def checkpoints(self, name: str, **kw) -> PhaseCheckpoints:
    return PhaseCheckpoints(self.dir / name / "checkpoints", keep=self.config.train.keep,
                            async_save=self.config.train.async_checkpoints, **kw)

  def result(self, name: str) -> dict | None:
    path = self.dir / name / "result.json"
    return json.loads(path.read_text()) if path.exists() else None

  def write_result(self, name: str, result: dict) -> None:
    if jax.process_index() == 0:
      (self.dir / name).mkdir(parents=True, exist_ok=True)
      (self.dir / name / "result.json").write_text(json.dumps(result, indent=2) + "\n")

  def trained_params(self, name: str, model: Model, shardings: dict, *, dont_load=(),
                     head_map=None, fresh_seed: int = 0) -> tuple[dict, dict]:
    """Parameters for ``model`` from the selected step of finished phase ``name``."""
    done = self.result(name)
    if done is None:
      raise FileNotFoundError(f"phase {name!r} has not finished in {self.dir}: run it first "
                              f"(xtjax run runs phases in order)")
    ckpt = self.checkpoints(name)
    with jax.set_mesh(self.mesh):
      params, plan = load_merged(ckpt, done["selected_step"], model.shapes(), shardings,
                                 lambda keys: self.init_params(model, shardings, fresh_seed, keys),
                                 dont_load=dont_load, head_map=head_map)
    ckpt.close()
    return params, plan


def run_pretrained(run: Run, name: str) -> dict:
  """Converts the Hugging Face checkpoint into the phase's orbax checkpoint (encoder only)."""
  model, shardings = run.model({})
  with jax.set_mesh(run.mesh):
    params = read_hf_params(run.hf_path, model.shapes(), run.model_cfg, shardings=shardings)
  ckpt = run.checkpoints(name)
  ckpt.save(0, params, meta={"phase": name, "source": str(run.hf_path)}, force=True)
  ckpt.wait()
  ckpt.close()
  return {"selected_step": 0, "source": str(run.hf_path)}


def phase_settings(run: Run, phase) -> tuple[ml_collections.ConfigDict, ...]:
  """The run's optim, train and data settings with the phase's own overrides applied."""
  out = []
  for key in ("optim", "train", "data"):
    base = run.config[key].copy_and_resolve_references()
    overrides = phase.get(key, {}) or {}
    unknown = [k for k in overrides if k not in base]
    if unknown:
      raise ValueError(f"unknown {key} key(s) {unknown} in phase config: use {', '.join(base)}")
    base.update(overrides)
    out.append(base)
  resolve_paths(run, out[2])
  return tuple(out)


def resolve_paths(run: Run, data: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  for key in ("hub_mirror", "tfds_data_dir", "bucc_dir", "ccgbank_dir", "mewslix_dir",
              "lareqa_dir"):
    data[key] = run.path(data[key])
  data.mlm_sources = tuple(run.path(s) for s in data.mlm_sources)
  return data


def load_task_data(run: Run, task: Task, split: str, language: str | None, data, limit: int = 0):
  """(rows, features, malformed-row report) of one split of ``task`` (its first ``limit`` rows)."""
  rows, report = pipeline.load_rows(task, split, language, data)
  if limit:
    rows = rows.select(range(min(limit, len(rows))))
  pair = "text_b" in dict(task.sources(split, language)[0].columns)
  features = feats.encode(rows, task.kind, run.tokenizer, data.max_length,
                          training=split == "train", pair=pair, stride=data.doc_stride)
  return rows, features, report


def predict(run: Run, eval_step, params, features: dict, kind: str, batch_size: int,
            buckets) -> np.ndarray:
  """Logits for every feature row, in order, gathered to every host (padding positions of
  token-level outputs hold -1e9)."""
  from jax.experimental import multihost_utils
  n, length = feats.num_rows(features), features["input_ids"].shape[-1]
  log.info("predicting %d rows in %d length bucket(s)", n, feats.count_buckets(features, buckets))
  out = None
  for local, rows in feats.eval_batches(features, ("input_ids", "attention_mask"), batch_size, buckets):
    logits = eval_step(params, shd.global_batch(local, run.batch_sh))
    if jax.process_count() > 1:
      logits = multihost_utils.process_allgather(logits, tiled=True)
    logits = np.asarray(logits)[:len(rows)]
    token_level = kind in feats.TOKEN_LEVEL
    if out is None:
      shape = (n, length) + logits.shape[2:] if token_level else (n,) + logits.shape[1:]
      out = np.full(shape, -1e9, np.float32)
    if token_level:
      out[rows, :logits.shape[1]] = logits
    else:
      out[rows] = logits
  return out


def evaluate_split(run: Run, task: Task, eval_step, params, rows, features, language: str,
                   train) -> tuple[Any, dict[str, float]]:
  """Predictions (leaderboard form) and the official scores of one split in one language."""
  logits = predict(run, eval_step, params, features, task.kind, train.eval_batch_size,
                   run.config.data.eval_buckets)
  predicted = outputs.predictions(task, rows, features, logits)
  return predicted, outputs.score(task, predicted, outputs.gold(task, rows), language)


def start_or_resume(run: Run, name: str, ckpt: PhaseCheckpoints, shapes: dict, param_sh: dict,
                    tx, data_iter, init):
  """(params, opt_state, opt shardings, start step, dev history, load plan): restored from the
  phase's latest checkpoint (data iterator included) if it was interrupted, else ``init()`` ->
  (params, plan) with a fresh optimizer state."""
  opt_abstract = jax.eval_shape(tx.init, shapes)
  opt_sh = opt_shardings(opt_abstract, shapes, param_sh, run.mesh)
  latest = ckpt.latest_step()
  if latest is not None:
    abstract = {k: jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=param_sh[k])
                for k, v in shapes.items()}
    abstract_opt = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s),
                                opt_abstract, opt_sh)
    with jax.set_mesh(run.mesh):
      restored = ckpt.restore(latest, abstract, abstract_opt, data_iter)
    meta = ckpt.meta(latest)
    log.info("%s: resuming at step %d", name, latest)
    return restored["params"], restored["opt_state"], opt_sh, latest, meta["history"], meta["plan"]
  params, plan = init()
  with jax.set_mesh(run.mesh):
    opt_state = jax.jit(tx.init, out_shardings=opt_sh)(params)
  return params, opt_state, opt_sh, 0, [], plan


def task_data(data, phase, task: str):
  """The phase's data settings with the task's own overrides (``phase.task_data[task]``)."""
  overrides = dict((phase.get("task_data", {}) or {}).get(task, {}) or {})
  unknown = [k for k in overrides if k not in data]
  if unknown:
    raise ValueError(f"unknown data key(s) {unknown} in task_data.{task}: use {', '.join(data)}")
  data = data.copy_and_resolve_references()
  data.update(overrides)
  return data


def run_train(run: Run, name: str, phase) -> dict:
  """Trains ``phase.task``, or ``phase.tasks`` together (one encoder, one optimizer, a head per
  task, each batch from one task drawn with probability proportional to its size to the power
  1/``train.mix_temperature``), from the ``init_from`` phase. Model selection: the mean over
  tasks of each one's English dev metric (masked LM has none; an MLM-only phase keeps its last
  step)."""
  names = list(phase.tasks) if phase.get("tasks") else [phase.task]
  optim, train, data = phase_settings(run, phase)
  datas = [task_data(data, phase, n) for n in names]
  tasks = [pipeline.resolve(get_task(n), d) for n, d in zip(names, datas)]
  model, param_sh = run.model({t.name: (t.kind, t.num_labels) for t in tasks})
  parts, dev, reports = [], {}, {}
  for task, d in zip(tasks, datas):
    _, features, reports[task.name] = load_task_data(run, task, "train", None, d)
    transform = None
    if task.kind == "masked_lm":
      from xtjax.data.mlm import MaskTokens
      transform = MaskTokens.from_tokenizer(run.tokenizer)
    else:  # jiant validates on a fixed subset during training (train.dev_examples; 0 = all)
      dev[task.name] = load_task_data(run, task, "dev", None, d, train.dev_examples)
    parts.append((features, feats.model_keys(task.kind, features), transform))
  sizes = [feats.num_rows(p[0]) for p in parts]
  steps = train.steps or math.ceil(train.epochs * sum(sizes) / train.batch_size)
  tx = make_optimizer(optim, steps, list(param_sh))
  accum = optim.grad_accum_steps  # each optimizer step sums this many micro-batches
  if train.batch_size % accum:
    raise ValueError(f"train.batch_size {train.batch_size} does not divide into "
                     f"optim.grad_accum_steps={accum} micro-batches")

  ckpt = run.checkpoints(name, select_metric="dev_score")
  data_iter = feats.train_batches(parts, train.batch_size // accum, seed=run.config.seed,
                                  weights=[n ** (1 / train.mix_temperature) for n in sizes],
                                  num_batches=steps * accum)
  params, opt_state, opt_sh, start, history, plan = start_or_resume(
      run, name, ckpt, model.shapes(), param_sh, tx, data_iter,
      lambda: run.trained_params(phase.init_from, model, param_sh,
                                 dont_load=list(phase.get("dont_load", [])),
                                 head_map=dict(phase.get("head_map", {}) or {}),
                                 fresh_seed=run.config.seed))

  train_steps = [make_train_step(model, tx, t.name, t.kind, param_sh, opt_sh, run.batch_sh)
                 for t in tasks]
  eval_steps = {t.name: make_eval_step(model, t.name, param_sh, run.batch_sh) for t in tasks}
  writer = metric_writer(run, name)
  base_rng = jax.random.key(run.config.seed + 1, impl=train.rng_impl)
  pending, t0 = [], time.time()

  def evaluate_and_save(step: int):
    scores = {t.name: evaluate_split(run, t, eval_steps[t.name], params, *dev[t.name][:2], "en",
                                     train)[1] for t in tasks if t.name in dev}
    value = (float(np.mean([scores[t.name][t.metric] for t in tasks if t.name in dev]))
             if dev else float(step))
    history.append({"step": step, "dev_score": value, "dev": scores})
    if writer:
      for task_name, task_scores in scores.items():
        for k, v in task_scores.items():
          writer.add_scalar(f"dev/{task_name}/{k}", v, step)
    ckpt.save(step, params, opt_state, data_iter, metrics={"dev_score": value},
              meta={"phase": name, "step": step, "history": history, "plan": plan,
                    "config": run.config.to_dict()})
    return value

  bar = progress_bar(name, start, steps)
  with jax.set_mesh(run.mesh):
    for step in bar:
      for micro in range(accum):
        local = next(data_iter)
        train_step = train_steps[int(local.pop("task"))]
        batch = shd.global_batch(local, run.batch_sh)
        params, opt_state, metrics = train_step(params, opt_state, batch,
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
  ckpt.wait()
  kept = set(ckpt.manager.all_steps())  # retention keeps the best; among ties, any kept one
  ckpt.close()
  if writer:
    writer.close()
  best = max((h for h in history if h["step"] in kept), key=lambda h: (h["dev_score"], h["step"]))
  return {"task": names[0], "tasks": names, "labels": {t.name: list(t.labels) for t in tasks},
          "steps": steps, "steps_done": history[-1]["step"], "selected_step": best["step"],
          "dev_metric": {t.name: t.metric for t in tasks if t.name in dev} or "last step",
          "dev_score": best["dev_score"], "dev": best["dev"], "history": history,
          "loaded_from": plan, "train_sizes": dict(zip(names, sizes)),
          "data": {"train": reports, "dev": {k: v[2] for k, v in dev.items()}}}


def stale_evals(history: list) -> int:
  """How many dev evaluations have passed since the best one (jiant's early-stopping count)."""
  best = max(range(len(history)), key=lambda i: (history[i]["dev_score"], -i))
  return len(history) - 1 - best


def progress_bar(name: str, start: int, steps: int) -> tqdm.tqdm:
  return tqdm.tqdm(range(start, steps), initial=start, total=steps, desc=name,
                   disable=jax.process_index() != 0, mininterval=2)


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


def metric_writer(run: Run, name: str):
  if jax.process_index() != 0:
    return None
  from tensorboardX import SummaryWriter
  return SummaryWriter(os.fspath(run.dir / name / "tensorboard"))


def phase_order(config: ml_collections.ConfigDict) -> list[str]:
  """Phases sorted so that each runs after those it starts from (init_from, from_phase, after)."""
  deps = {}
  for name, phase in config.phases.items():
    deps[name] = [d for d in (phase.get("init_from"), phase.get("from_phase"), phase.get("after")) if d]
    for d in deps[name]:
      if d not in config.phases:
        raise ValueError(f"phase {name} depends on unknown phase {d!r}: the config has "
                         f"{', '.join(config.phases)}")
  order: list[str] = []

  def visit(name, stack=()):
    if name in stack:
      raise ValueError(f"phases depend on each other in a cycle: {' -> '.join(stack + (name,))}")
    if name not in order:
      for d in deps[name]:
        visit(d, stack + (name,))
      order.append(name)

  for name in deps:
    visit(name)
  return order


def run_all(config: ml_collections.ConfigDict, only: list[str] | None = None) -> dict:
  """Runs the config's phases in order (or only the named ones), skipping finished ones."""
  run = Run(config)
  run.save_config()
  results = {}
  for name in phase_order(config):
    phase = config.phases[name]
    if only and name not in only:
      continue
    if phase.kind not in PHASE_KINDS:
      raise ValueError(f"phase {name}: unknown kind {phase.kind!r}; use one of {PHASE_KINDS}")
    done = run.result(name)
    if done is not None:
      log.info("phase %s already finished; skipping", name)
      results[name] = done
      continue
    log.info("phase %s (%s) starting", name, phase.kind)
    if phase.kind == "demo_assets":
      from xtjax.demo import prepare
      result = prepare(run.dir, config.demo)
    elif phase.kind == "pretrained":
      result = run_pretrained(run, name)
    elif phase.kind == "train":
      result = run_train(run, name, phase)
    elif phase.kind == "dual_encoder":
      from xtjax.retrieval.dual_encoder import run_phase as run_dual_encoder
      result = run_dual_encoder(run, name, phase)
    elif phase.kind == "retrieval":
      from xtjax.retrieval.evaluate import run_phase
      result = run_phase(run, name, phase)
    else:
      result = run_eval(run, name, phase)
    run.write_result(name, result)
    results[name] = result
  return results
