"""A ``train`` phase: one task, or several together (one encoder, one optimizer, a head per task).

Each batch comes from one task, drawn with probability proportional to its size to the power
1/``train.mix_temperature``. Model selection: the mean over tasks of each one's English dev metric
(a kind without one, masked LM, takes no part; a phase of only such tasks keeps its last step).

``tuning="prefix"`` trains deep prompts and heads on the frozen encoder of ``init_from``: the
optimizer holds state for those only, the frozen parameters come out bitwise unchanged, and the
checkpoints hold the prompts and heads with the name and step of the backbone they sit on.
``few_shot_k`` trains on k drawn examples per language instead of the English training set.
Every phase prints and records its trainable parameter count.
"""

from __future__ import annotations

import logging
import math

import datasets
import jax
import numpy as np

from xtjax import kinds
from xtjax.data import batches, few_shot, pipeline
from xtjax.data.tasks import Task, get_task
from xtjax.fit import fit
from xtjax.optim import frozen_keys, make_optimizer, prompt_or_head
from xtjax.params import Model, parameter_counts
from xtjax.phase_config import TrainPhase
from xtjax.predict import evaluate_split, load_task_data
from xtjax.run import PROMPTS, PhaseResult, Run
from xtjax.steps import make_eval_step

log = logging.getLogger(__name__)


def task_loss(model: Model, task: Task):
  """``loss_fn(params, batch, rng)`` of ``task``'s head and kind."""
  kind = kinds.get(task.kind)
  return lambda params, batch, rng: kind.loss(model.bind(params)(batch, task=task.name, rng=rng),
                                              batch)


def task_outputs(model: Model, task: str):
  """``fn(params, batch) -> logits`` of ``task``'s head, without dropout."""
  return lambda params, batch: model.bind(params)(batch, task=task)


def dev_task(task: Task, data) -> Task:
  """The task whose dev split selects ``task``'s model: ``data.dev_task`` if set (jiant selects
  XNLI models on MNLI's dev set), else ``task`` itself."""
  if not data.dev_task:
    return task
  other = pipeline.resolve(get_task(data.dev_task), data)
  if (other.kind, other.labels) != (task.kind, task.labels):
    raise ValueError(f"data.dev_task {other.name} ({other.kind}, labels {list(other.labels)}) "
                     f"cannot select {task.name} ({task.kind}, labels {list(task.labels)}): name "
                     "a task of the same kind and labels")
  return other


def few_shot_data(run: Run, task: Task, phase: TrainPhase, data) -> tuple[dict, dict, dict]:
  """(training features, row report, ``few_shot`` record) of ``phase``'s few-shot examples of
  ``task``: ``few_shot_k`` per language of ``few_shot_languages``, pooled."""
  record = {"task": task.name, "k": phase.few_shot_k, "seed": phase.few_shot_seed,
            "languages": {}}
  parts = []
  for language in phase.few_shot_languages:
    rows, record["languages"][language] = few_shot.draw(task, language, phase.few_shot_k,
                                                        phase.few_shot_seed, data)
    parts.append(rows)
  rows = datasets.concatenate_datasets(parts)
  pair = "text_b" in dict(task.few_shot_source(phase.few_shot_languages[0])[1].columns)
  features = kinds.get(task.kind).encode(rows[:], run.tokenizer, data, training=True, pair=pair)
  return features, {"rows": len(rows), "kept": len(rows), "malformed": {}}, record


def announce(phase: TrainPhase, counts: dict) -> None:
  """Prints the phase's trainable share of the parameters (process 0)."""
  line = (f"phase {phase.name} ({phase.tuning} tuning): {counts['trainable']:,} of "
          f"{counts['total']:,} parameters trainable ({100 * counts['fraction']:.3f}%; prompts "
          f"{counts['prompts']:,}, heads {counts['heads']:,}, encoder {counts['encoder']:,})")
  log.info(line)
  if jax.process_index() == 0:
    print(line, flush=True)


def run_phase(run: Run, phase: TrainPhase) -> PhaseResult:
  """Trains ``phase``'s tasks from its ``init_from`` phase; see the module docstring."""
  names = phase.task_names
  optim, train = phase.optim, phase.train
  datas = {n: phase.data_for(n) for n in names}
  tasks = [pipeline.resolve(get_task(n), datas[n]) for n in names]
  model, param_sh = run.model(tasks, phase=phase.name)
  prefix = phase.tuning == "prefix"
  frozen = frozen_keys(param_sh, optim.freeze, prompt_or_head if prefix else None)
  counts = parameter_counts(model.shapes(), frozen)
  announce(phase, counts)
  parts, dev, reports, drawn = [], {}, {}, None
  dev_tasks = {t.name: dev_task(t, datas[t.name]) for t in tasks}
  for task in tasks:
    kind = kinds.get(task.kind)
    if phase.few_shot_k:
      features, reports[task.name], drawn = few_shot_data(run, task, phase, datas[task.name])
    else:
      _, features, reports[task.name] = load_task_data(run, task, "train", None,
                                                       datas[task.name])
    if kind.has_dev:  # jiant validates on a fixed subset during training (train.dev_examples)
      dev[task.name] = load_task_data(run, dev_tasks[task.name], "dev", None, datas[task.name],
                                      train.dev_examples)
    augment = kind.augment(run.tokenizer) if kind.augment else None
    parts.append((features, batches.model_keys(kind.targets, features), augment))
  sizes = [batches.num_rows(p[0]) for p in parts]
  steps = train.steps or math.ceil(train.epochs * sum(sizes) / train.batch_size)
  accum = optim.grad_accum_steps  # each optimizer step sums this many micro-batches
  if train.batch_size % accum:
    raise ValueError(f"phase {phase.name}: train.batch_size {train.batch_size} does not divide "
                     f"into optim.grad_accum_steps={accum} micro-batches")
  if min(sizes) < train.batch_size // accum:
    raise ValueError(f"phase {phase.name}: {min(sizes)} training rows are fewer than one batch "
                     f"of {train.batch_size // accum}: lower train.batch_size")
  eval_steps = {t.name: make_eval_step(task_outputs(model, t.name), param_sh, run.batch_sh)
                for t in tasks if t.name in dev}

  def evaluate(params):
    scores = {t.name: evaluate_split(run, dev_tasks[t.name], eval_steps[t.name], params,
                                     *dev[t.name][:2], "en", datas[t.name],
                                     train.eval_batch_size)[1]
              for t in tasks if t.name in dev}
    return float(np.mean([scores[t.name][t.metric] for t in tasks if t.name in dev])), scores

  backbone = None
  if prefix:
    source = run.backbone(phase.init_from)
    backbone = {"phase": source, "step": run.finished_step(source)}
  fitted = fit(
      run, phase.name, train=train, steps=steps, accum=accum, shapes=model.shapes(),
      param_sh=param_sh, tx=make_optimizer(optim, steps, list(param_sh), frozen),
      loss_fns=[task_loss(model, t) for t in tasks],
      batches=batches.train_batches(parts, train.batch_size // accum, seed=run.config.seed,
                                    weights=[n ** (1 / train.mix_temperature) for n in sizes],
                                    num_batches=steps * accum,
                                    buckets=[datas[t.name].train_buckets
                                             if kinds.get(t.kind).cut_padding else ()
                                             for t in tasks]),
      init=lambda: run.trained_params(phase.init_from, model, param_sh,
                                      dont_load=list(phase.dont_load),
                                      head_map=dict(phase.head_map),
                                      optional=[PROMPTS] if prefix else (),
                                      fresh_seed=run.config.seed),
      evaluate=evaluate if dev else None, frozen=frozen,
      saved=[k for k in param_sh if k not in frozen] if prefix else None,
      meta={"backbone": backbone} if prefix else None)
  extra = {"backbone": backbone} if prefix else {}
  if drawn is not None:
    extra["few_shot"] = drawn
  return PhaseResult(phase.name, phase.kind, fitted.selected_step, tuple(names), dict(
      task=names[0], labels={t.name: list(t.labels) for t in tasks}, tuning=phase.tuning,
      parameters=counts, **extra, **fitted.summary(),
      dev_metric={t.name: t.metric for t in tasks if t.name in dev} or "last step",
      dev_tasks={t: d.name for t, d in dev_tasks.items() if t in dev},
      train_sizes=dict(zip(names, sizes)),
      data={"train": reports, "dev": {k: v[2] for k, v in dev.items()}}))
