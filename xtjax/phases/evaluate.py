"""Zero-shot evaluation of trained phases on every language of a task, with result tables.

Writes ``results.json``, ``results.md`` and ``results.csv`` in the output directory, and the
predictions as the XTREME leaderboard lays them out: ``predictions/<task>/test-<lang>.<ext>``
(scored by ``xtjax score`` against the gold folder of ``xtjax export-labels``).
"""

from __future__ import annotations

import json

import jax
import numpy as np
from etils import epath

from xtjax import kinds, scoring
from xtjax.data import few_shot, pipeline
from xtjax.data.tasks import RETRIEVAL_TASKS, check_languages, get_task
from xtjax.phase_config import EvalPhase, benchmark_languages
from xtjax.phases.train import task_outputs
from xtjax.predict import evaluate_split, load_task_data
from xtjax.retrieval import evaluate as retrieval
from xtjax.run import PhaseResult, Run
from xtjax.steps import make_eval_step
from xtjax.tables import write_results


def few_shot_records(run: Run, phase: str) -> list[dict]:
  """The ``few_shot`` records of ``phase`` and of the phases it starts from (their training
  examples are left out of its evaluations)."""
  records = []
  while phase:
    done = run.result(phase)
    if done is not None and done.details.get("few_shot"):
      records.append(done.details["few_shot"])
    phase = getattr(run.phases.get(phase), "init_from", "")
  return records


def evaluate_task(run: Run, task_name: str, from_phase: str, languages, *, split: str = "test",
                  out_dir, data=None, batch_size: int | None = None, setting: str = "") -> dict:
  """Scores the selected model of ``from_phase`` on ``task_name`` in each language (without the
  examples few-shot training used) and writes the prediction files under
  ``out_dir/predictions``; ``setting`` labels the result for sweep reports."""
  data = data or run.data
  batch_size = batch_size or run.config.train.eval_batch_size
  task = pipeline.resolve(get_task(task_name), data)
  languages = check_languages(task, languages, split)
  trained = get_task(trained_head(run, from_phase, task))
  if trained.kind != task.kind:
    raise ValueError(f"phase {from_phase} trained {trained.name} ({trained.kind}), which cannot "
                     f"predict {task.name} ({task.kind}): evaluate from another phase")
  model, param_sh = run.model([pipeline.resolve(trained, data)], phase=from_phase)
  params, _ = run.trained_params(from_phase, model, param_sh)
  seen = few_shot_records(run, from_phase)
  eval_step = make_eval_step(task_outputs(model, trained.name), param_sh, run.batch_sh)
  metrics, sizes, reports = {}, {}, {}
  with jax.set_mesh(run.mesh):
    for lang in languages:
      rows, features, reports[lang] = load_task_data(
          run, task, split, lang, data, exclude=few_shot.held_out(task, split, lang, seen))
      predicted, scores = evaluate_split(run, task, eval_step, params, rows, features, lang, data,
                                         batch_size)
      for metric, value in scores.items():
        metrics.setdefault(metric, {})[lang] = value
      sizes[lang] = len(rows)
      if jax.process_index() == 0:
        write_predictions(task.name, lang, split, predicted, out_dir / "predictions")
  return {"task": task.name, "split": split, "from_phase": from_phase, "setting": setting,
          "languages": languages,
          "metrics": metrics, **{f"avg_{m}": float(np.mean(list(v.values())))
                                 for m, v in metrics.items()},
          "examples": sizes, "protocol": kinds.get(task.kind).protocol(task, data),
          "data": reports}


def write_predictions(task: str, lang: str, split: str, predicted, out_dir) -> None:
  """Leaderboard files (``<task>/test-<lang>.<ext>``) for the benchmarks' test sets; JSON
  (``<task>/<split>-<lang>.json``) for other splits and tasks."""
  if split == "test" and scoring.in_leaderboard(task, lang):
    scoring.write_predictions(task, lang, predicted, out_dir)
  else:
    path = epath.Path(out_dir) / task / f"{split}-{lang}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(predicted, ensure_ascii=False) + "\n")


def trained_head(run: Run, phase: str, task) -> str:
  """The head of ``phase`` that predicts ``task``: its own, the one it shares (squad for xquad),
  or the phase's only head."""
  done = run.result(phase)
  heads = done.tasks if done and done.tasks else (task.name,)
  for head in (task.name, task.model_task):
    if head in heads:
      return head
  if len(heads) == 1:
    return heads[0]
  raise ValueError(f"phase {phase} trained {list(heads)}, none of which is {task.name}: evaluate "
                   "it from a phase that trained it")


def run_phase(run: Run, phase: EvalPhase) -> PhaseResult:
  """An eval phase: ``phase.task`` in ``phase.languages`` (default all) from ``phase.from_phase``."""
  out_dir = run.dir / phase.name
  result = evaluate_task(run, phase.task, phase.from_phase, phase.languages, split=phase.split,
                         out_dir=out_dir, data=phase.data,
                         batch_size=phase.train.eval_batch_size, setting=phase.setting)
  write_results(out_dir, [result], f"Zero-shot {phase.task}, model from phase {phase.from_phase}")
  return PhaseResult(phase.name, phase.kind, details=result)


def trained_phase(run: Run, task: str) -> str:
  """The last phase of the run that trained ``task`` (the model a zero-shot eval of it uses)."""
  trains = {task, get_task(task).model_task}
  names = [n for n, p in run.phases.items() if p.kind == "train" and trains & set(p.task_names)]
  if not names:
    raise ValueError(f"no phase of {run.dir} trains task {task!r}: add a train phase for it "
                     f"(its phases: {', '.join(run.phases)})")
  return names[-1]


def task_settings(run: Run, task: str, trained: str):
  """The phase whose data settings evaluate ``task``: the run's eval phase of it (its QA windows,
  post-processing, prompt), else the phase that trained it."""
  evals = [p for p in run.phases.values() if p.kind == "eval" and p.task == task]
  return evals[-1] if evals else run.phases[trained]


def evaluate_checkpoint(run: Run, tasks: list[str], benchmark: str,
                        from_phase: str | None = None) -> dict:
  """``xtjax eval --checkpoint``: every language of ``benchmark`` for each task, under
  ``run_dir/eval-<benchmark>``. Trained tasks use the phase that trained them; retrieval tasks
  read ``from_phase``'s encoder (default: the intermediate model, else the pretrained one; for
  XTREME-R's Tatoeba name a SQuAD-trained phase)."""
  out_dir = run.dir / f"eval-{benchmark}"
  results = []
  for task in tasks:
    langs = benchmark_languages(benchmark, task)
    if task in RETRIEVAL_TASKS:
      results.append(retrieval.evaluate_retrieval(
          run, task, from_phase or retrieval.default_phase(run, task), languages=langs,
          out_dir=out_dir))
    else:
      trained = trained_phase(run, task)
      settings = task_settings(run, task, trained)
      results.append(evaluate_task(run, task, trained, langs, out_dir=out_dir, data=settings.data,
                                   batch_size=settings.train.eval_batch_size))
  write_results(out_dir, results, f"Zero-shot {benchmark} from {run.dir}")
  return {"results": results, "out_dir": str(out_dir)}
