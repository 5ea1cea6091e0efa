"""A ``train`` phase: one task, or several together (one encoder, one optimizer, a head per task).

Each batch comes from one task, drawn with probability proportional to its size to the power
1/``train.mix_temperature``. Model selection: the mean over tasks of each one's English dev metric
(a kind without one, masked LM, takes no part; a phase of only such tasks keeps its last step).
"""

from __future__ import annotations

import math

import numpy as np

from xtjax import kinds
from xtjax.data import batches, pipeline
from xtjax.data.tasks import Task, get_task
from xtjax.fit import fit
from xtjax.optim import make_optimizer
from xtjax.params import Model
from xtjax.phase_config import TrainPhase
from xtjax.predict import evaluate_split, load_task_data
from xtjax.run import PhaseResult, Run
from xtjax.steps import make_eval_step


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


def run_phase(run: Run, phase: TrainPhase) -> PhaseResult:
  """Trains ``phase``'s tasks from its ``init_from`` phase; see the module docstring."""
  names = phase.task_names
  optim, train = phase.optim, phase.train
  datas = {n: phase.data_for(n) for n in names}
  tasks = [pipeline.resolve(get_task(n), datas[n]) for n in names]
  model, param_sh = run.model(tasks)
  parts, dev, reports = [], {}, {}
  dev_tasks = {t.name: dev_task(t, datas[t.name]) for t in tasks}
  for task in tasks:
    kind = kinds.get(task.kind)
    _, features, reports[task.name] = load_task_data(run, task, "train", None, datas[task.name])
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
  eval_steps = {t.name: make_eval_step(task_outputs(model, t.name), param_sh, run.batch_sh)
                for t in tasks if t.name in dev}

  def evaluate(params):
    scores = {t.name: evaluate_split(run, dev_tasks[t.name], eval_steps[t.name], params,
                                     *dev[t.name][:2], "en", datas[t.name],
                                     train.eval_batch_size)[1]
              for t in tasks if t.name in dev}
    return float(np.mean([scores[t.name][t.metric] for t in tasks if t.name in dev])), scores

  fitted = fit(
      run, phase.name, train=train, steps=steps, accum=accum, shapes=model.shapes(),
      param_sh=param_sh, tx=make_optimizer(optim, steps, list(param_sh)),
      loss_fns=[task_loss(model, t) for t in tasks],
      batches=batches.train_batches(parts, train.batch_size // accum, seed=run.config.seed,
                                    weights=[n ** (1 / train.mix_temperature) for n in sizes],
                                    num_batches=steps * accum),
      init=lambda: run.trained_params(phase.init_from, model, param_sh,
                                      dont_load=list(phase.dont_load),
                                      head_map=dict(phase.head_map), fresh_seed=run.config.seed),
      evaluate=evaluate if dev else None)
  return PhaseResult(phase.name, phase.kind, fitted.selected_step, tuple(names), dict(
      task=names[0], labels={t.name: list(t.labels) for t in tasks}, **fitted.summary(),
      dev_metric={t.name: t.metric for t in tasks if t.name in dev} or "last step",
      dev_tasks={t: d.name for t, d in dev_tasks.items() if t in dev},
      train_sizes=dict(zip(names, sizes)),
      data={"train": reports, "dev": {k: v[2] for k, v in dev.items()}}))
