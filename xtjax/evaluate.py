"""Zero-shot evaluation of trained phases on every language of a task, with result tables.

Writes ``results.json``, ``results.md`` and ``results.csv`` in the output directory, and the
predictions as the XTREME leaderboard lays them out: ``predictions/<task>/test-<lang>.<ext>``
(scored by ``xtjax score`` against the gold folder of ``xtjax export-labels``).
"""

from __future__ import annotations

import csv
import io
import json

import jax
import numpy as np

from xtjax import scoring
from xtjax.data import pipeline
from xtjax.data.tasks import check_languages, get_task
from xtjax.steps import make_eval_step


def markdown_table(results: list[dict]) -> str:
  """One row per task and metric, one column per language (tasks may differ in languages)."""
  lines = []
  for r in results:
    langs = list(r["languages"])
    lines += ["| task | metric | " + " | ".join(langs) + " | avg |",
              "|" + "---|" * (len(langs) + 3)]
    for metric, values in r["metrics"].items():
      lines.append(f"| {r['task']} | {metric} | " + " | ".join(f"{values[l]:.1f}" for l in langs)
                   + f" | {r['avg_' + metric]:.1f} |")
    lines.append("")
  return "\n".join(lines)


def evaluate_task(run, task_name: str, from_phase: str, languages, *, split: str = "test",
                  out_dir, data=None, train=None) -> dict:
  """Scores the selected model of ``from_phase`` on ``task_name`` in each language and writes
  the prediction files under ``out_dir/predictions``."""
  from xtjax.train import evaluate_split, load_task_data
  data, train = data or run.data, train or run.config.train
  task = pipeline.resolve(get_task(task_name), data)
  languages = check_languages(task, languages)
  trained = trained_head(run, from_phase, task)
  if get_task(trained).kind != task.kind:
    raise ValueError(f"phase {from_phase} trained {trained} ({get_task(trained).kind}), which "
                     f"cannot predict {task.name} ({task.kind}): evaluate from another phase")
  model, param_sh = run.model({trained: (task.kind, task.num_labels)})
  params, _ = run.trained_params(from_phase, model, param_sh)
  eval_step = make_eval_step(model, trained, param_sh, run.batch_sh)
  metrics, sizes, reports = {}, {}, {}
  with jax.set_mesh(run.mesh):
    for lang in languages:
      rows, features, reports[lang] = load_task_data(run, task, split, lang, data)
      predicted, scores = evaluate_split(run, task, eval_step, params, rows, features, lang, train)
      for metric, value in scores.items():
        metrics.setdefault(metric, {})[lang] = value
      sizes[lang] = len(rows)
      if jax.process_index() == 0:
        scoring.write_predictions(task.name, lang, predicted, out_dir / "predictions")
  result = {"task": task.name, "split": split, "from_phase": from_phase, "languages": languages,
            "metrics": metrics, **{f"avg_{m}": float(np.mean(list(v.values())))
                                   for m, v in metrics.items()},
            "examples": sizes, "data": reports}
  return result


def trained_head(run, phase: str, task) -> str:
  """The head of ``phase`` that predicts ``task``: its own, the one it shares (squad for xquad),
  or the phase's only head."""
  done = run.result(phase) or {}
  heads = done.get("tasks") or [done.get("task", task.name)]
  for head in (task.name, task.model_task):
    if head in heads:
      return head
  if len(heads) == 1:
    return heads[0]
  raise ValueError(f"phase {phase} trained {heads}, none of which is {task.name}: evaluate it "
                   "from a phase that trained it")


def write_results(out_dir, results: list[dict], title: str) -> str:
  """results.json/.md/.csv in ``out_dir``; returns the markdown table (also printed)."""
  table = markdown_table(results)
  if jax.process_index() == 0:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "results.md").write_text(table)
    buf = io.StringIO()
    rows = [["task", "language", "metric", "value", "examples"]]
    for r in results:
      rows += [[r["task"], l, m, f"{v[l]:.2f}", r.get("examples", {}).get(l, "")]
               for m, v in r["metrics"].items() for l in r["languages"]]
    csv.writer(buf).writerows(rows)
    (out_dir / "results.csv").write_text(buf.getvalue())
    print(f"\n{title}:\n{table}")
  return table


def run_eval(run, name: str, phase) -> dict:
  """An eval phase: ``phase.task`` in ``phase.languages`` (default all) from ``phase.from_phase``."""
  from xtjax.train import phase_settings
  _, train, data = phase_settings(run, phase)
  out_dir = run.dir / name
  result = evaluate_task(run, phase.task, phase.from_phase, phase.get("languages"),
                         split=phase.get("split", "test"), out_dir=out_dir, data=data, train=train)
  write_results(out_dir, [result], f"Zero-shot {phase.task}, model from phase {phase.from_phase}")
  return result


def trained_phase(run, task: str) -> str:
  """The last phase of the run that trained ``task`` (the model a zero-shot eval of it uses)."""
  from xtjax.train import phase_order
  trains = {task, get_task(task).model_task}
  phases = run.config.phases
  names = [n for n in phase_order(run.config) if phases[n].kind == "train"
           and trains & set(phases[n].get("tasks") or [phases[n].get("task")])]
  if not names:
    raise ValueError(f"no phase of {run.dir} trains task {task!r}: add a train phase for it "
                     f"(its phases: {', '.join(run.config.phases)})")
  return names[-1]


def evaluate_checkpoint(run, tasks: list[str], benchmark: str, from_phase: str | None = None) -> dict:
  """``xtjax eval --checkpoint``: every language of ``benchmark`` for each task, under
  ``run_dir/eval-<benchmark>``. Trained tasks use the phase that trained them; retrieval tasks
  read ``from_phase``'s encoder (default: the intermediate model, else the pretrained one; for
  XTREME-R's Tatoeba name a SQuAD-trained phase)."""
  from xtjax.retrieval import evaluate as retrieval
  if benchmark not in scoring.TASK_LANGUAGES:
    raise ValueError(f"unknown benchmark {benchmark!r}: use {', '.join(scoring.TASK_LANGUAGES)}")
  out_dir = run.dir / f"eval-{benchmark}"
  results = []
  for task in tasks:
    langs = scoring.TASK_LANGUAGES[benchmark].get(task)
    if langs is None:
      raise ValueError(f"task {task!r} is not part of {benchmark}: it has "
                       f"{', '.join(scoring.TASK_LANGUAGES[benchmark])}")
    if task in retrieval.RETRIEVAL_TASKS:
      results.append(retrieval.evaluate_retrieval(
          run, task, from_phase or retrieval.default_phase(run, task), languages=langs, out_dir=out_dir))
    else:
      results.append(evaluate_task(run, task, trained_phase(run, task), langs, out_dir=out_dir))
  write_results(out_dir, results, f"Zero-shot {benchmark} from {run.dir}")
  return {"results": results, "out_dir": str(out_dir)}
