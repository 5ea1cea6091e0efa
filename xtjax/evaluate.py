"""Zero-shot evaluation of a trained phase on every language of a task, with result tables.

Writes ``results.json``, ``results.md`` and ``results.csv`` under ``run_dir/<phase>/``, and the
predictions as the XTREME leaderboard lays them out: ``predictions/<task>/test-<lang>.tsv``.
"""

from __future__ import annotations

import csv
import io
import json

import jax
import numpy as np

from xtjax.data.tasks import check_languages, get_task
from xtjax.steps import make_eval_step


def markdown_table(task: str, metric: str, scores: dict[str, float]) -> str:
  langs = list(scores)
  avg = float(np.mean([scores[l] for l in langs]))
  head = "| task | metric | " + " | ".join(langs) + " | avg |"
  sep = "|" + "---|" * (len(langs) + 3)
  row = f"| {task} | {metric} | " + " | ".join(f"{scores[l]:.1f}" for l in langs) + f" | {avg:.1f} |"
  return "\n".join([head, sep, row])


def run_eval(run, name: str, phase) -> dict:
  """Evaluates ``phase.from_phase``'s selected model on ``phase.split`` in every language."""
  from xtjax.train import accuracy, load_split, predict
  task = get_task(phase.task)
  languages = check_languages(task, phase.get("languages"))
  model, param_sh = run.model({task.name: (task.kind, len(task.labels))})
  params, _ = run.trained_params(phase.from_phase, model, param_sh)
  eval_step = make_eval_step(model, task.name, param_sh, run.batch_sh)
  out_dir = run.dir / name
  pred_dir = out_dir / "predictions" / task.name
  scores, sizes, reports = {}, {}, {}
  with jax.set_mesh(run.mesh):
    for lang in languages:
      ds, reports[lang] = load_split(run, task, phase.split, lang)
      logits = predict(run, eval_step, params, ds, run.config.train.eval_batch_size)
      scores[lang] = accuracy(logits, np.asarray(ds["label"]))
      sizes[lang] = len(ds)
      if jax.process_index() == 0:
        pred_dir.mkdir(parents=True, exist_ok=True)
        (pred_dir / f"test-{lang}.tsv").write_text(
            "".join(task.labels[i] + "\n" for i in logits.argmax(-1)))
  table = markdown_table(task.name, task.metric, scores)
  result = {"task": task.name, "metric": task.metric, "split": phase.split,
            "from_phase": phase.from_phase, "scores": scores,
            "average": float(np.mean(list(scores.values()))), "examples": sizes, "data": reports}
  if jax.process_index() == 0:
    (out_dir / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    (out_dir / "results.md").write_text(table + "\n")
    buf = io.StringIO()
    csv.writer(buf).writerows([["language", task.metric, "examples"]]
                              + [[l, f"{scores[l]:.2f}", sizes[l]] for l in languages])
    (out_dir / "results.csv").write_text(buf.getvalue())
    print(f"\nZero-shot {task.name} ({phase.split}), model from phase {phase.from_phase}:\n{table}\n")
  return result
