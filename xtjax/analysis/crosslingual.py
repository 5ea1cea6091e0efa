"""Generalised cross-lingual evaluation of XNLI and PAWS-X (Huang et al. 2021, arXiv 2104.08645):
the first sentence of each test pair in one language and the second in another, a language x
language accuracy matrix (rows: first sentence, columns: second; the diagonal is the usual
zero-shot score).

The test sets are translations of one English set, so pair i of every language is the same pair.
google/xtreme keeps no pair id (XNLI-1.0's ``pairID`` is dropped), so rows are matched by their
position within each language: `aligned` refuses languages of different sizes, and checks that
every position has the same gold label in every language (a shifted or reordered language fails
this with near certainty). Rows malformed in any language are dropped at that position in all.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import datasets
import jax
import numpy as np

from xtjax import kinds
from xtjax.analysis import files, plots, runs
from xtjax.data import pipeline
from xtjax.data.tasks import Task, get_task
from xtjax.predict import evaluate_split
from xtjax.steps import make_eval_step

PAIR_TASKS = ("xnli", "pawsx")
FIELDS = ("text_a", "text_b", "label", "label_text")


def aligned(rows: dict[str, list[dict | None]]) -> tuple[dict[str, dict[str, list]], int]:
  """Per language, the columns of the positions well-formed in every language (rows are
  ``{text_a, text_b, label}`` or None when malformed), and how many positions were dropped."""
  sizes = {lang: len(r) for lang, r in rows.items()}
  if len(set(sizes.values())) > 1:
    raise ValueError("test sets are not parallel: sizes differ ("
                     + ", ".join(f"{l} {n}" for l, n in sizes.items())
                     + "); leave out the languages whose size differs with --languages")
  n = next(iter(sizes.values()))
  keep = [i for i in range(n) if all(r[i] is not None for r in rows.values())]
  for i in keep:
    labels = {lang: r[i]["label"] for lang, r in rows.items()}
    if len(set(labels.values())) > 1:
      raise ValueError(f"test sets are not parallel by position: row {i} has labels {labels}; "
                       "the pair builder needs every language in the same order")
  columns = {lang: {f: [r[i][f] for i in keep] for f in FIELDS} for lang, r in rows.items()}
  return columns, n - len(keep)


def cross_pairs(columns: dict[str, dict[str, list]], first: str, second: str) -> dict[str, list]:
  """Pair i with its first sentence in ``first`` and its second in ``second`` (same label)."""
  return {"text_a": columns[first]["text_a"], "text_b": columns[second]["text_b"],
          "label": columns[first]["label"], "label_text": columns[first]["label_text"]}


def load_positions(task: Task, language: str, data, split: str = "test") -> list[dict | None]:
  """Every row of one language's split in file order: the kind's fields, or None if malformed."""
  source = dataclasses.replace(task.source("test", language), split=split)
  ds = pipeline.load_source(source, hub_mirror=data.hub_mirror)
  feature = ds.features.get(source.column("label"))
  names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
  convert = kinds.get(task.kind).convert
  rows = [convert(row, source, task, names, False) for row in ds]
  return [None if problem else fields for fields, problem in rows]


def load_parallel(task: Task, languages, data, split: str = "test"):
  """`aligned` columns of ``languages`` (and the count of dropped positions)."""
  if task.name not in PAIR_TASKS:
    raise ValueError(f"generalised cross-lingual evaluation needs a sentence-pair task with "
                     f"parallel test sets: use {', '.join(PAIR_TASKS)}, not {task.name!r}")
  return aligned({lang: load_positions(task, lang, data, split) for lang in languages})


def evaluate(ckpt: runs.Checkpoint, task_name: str, languages, *, max_examples: int = 0,
             batch_size: int = 0) -> dict:
  """Accuracy for every (first, second) language pair of ``task_name`` from ``ckpt``."""
  run = ckpt.run
  task = pipeline.resolve(get_task(task_name), run.data)
  head = runs.task_head(ckpt, task)
  if head is None:
    raise ValueError(f"phase {ckpt.phase} has no head that predicts {task.name}: give a phase "
                     f"that trained it, e.g. {run.dir}:<target phase>")
  data = runs.task_data(ckpt, head)
  languages = runs.languages(run, task.name, languages)
  columns, dropped = load_parallel(task, languages, data)
  if max_examples:
    columns = {l: {f: v[:max_examples] for f, v in c.items()} for l, c in columns.items()}
  model, shardings, params = runs.load_model(ckpt, head)
  step = make_eval_step(lambda p, batch: model.bind(p)(batch, task=head), shardings, run.batch_sh)
  kind = kinds.get(task.kind)
  scores = {}
  with jax.set_mesh(run.mesh):
    for first in languages:
      for second in languages:
        pairs = cross_pairs(columns, first, second)
        features = kind.encode(pairs, run.tokenizer, data, training=False, pair=True)
        _, metrics = evaluate_split(run, task, step, params, datasets.Dataset.from_dict(pairs),
                                    features, first, data,
                                    batch_size or run.config.train.eval_batch_size)
        scores[first, second] = metrics["accuracy"]
  matrix = np.array([[scores[a, b] for b in languages] for a in languages])
  off = matrix[~np.eye(len(languages), dtype=bool)]
  return {"task": task.name, "checkpoint": ckpt.label, "languages": languages,
          "examples": len(columns[languages[0]]["label"]), "dropped_positions": dropped,
          "matrix": matrix.tolist(), "diagonal_mean": float(np.mean(np.diag(matrix))),
          "off_diagonal_mean": float(off.mean()) if off.size else None}


def write(result: dict, out_dir: Path) -> dict[str, Path]:
  """``<task>.json``, ``.csv`` (first, second, accuracy), ``.md`` and ``<task>_heatmap.png``."""
  out_dir.mkdir(parents=True, exist_ok=True)
  langs, matrix, task = result["languages"], np.asarray(result["matrix"]), result["task"]
  paths = {k: out_dir / f"{task}{suffix}" for k, suffix in
           (("json", ".json"), ("csv", ".csv"), ("markdown", ".md"), ("heatmap", "_heatmap.png"))}
  files.write_json(paths["json"], result)
  files.write_csv(paths["csv"], ["first", "second", "accuracy"],
                  [[a, b, float(matrix[i, j])] for i, a in enumerate(langs)
                   for j, b in enumerate(langs)])
  paths["markdown"].write_text(table(result), encoding="utf-8")
  plots.heatmap(paths["heatmap"], matrix, langs, langs, xlabel="second sentence language",
                ylabel="first sentence language", colourbar="accuracy (%)",
                title=f"{task}, generalised cross-lingual ({result['checkpoint']})")
  return paths


def table(result: dict) -> str:
  langs = result["languages"]
  rows = [[f"**{a}**", *row] for a, row in zip(langs, result["matrix"])]
  return (files.markdown([f"{result['task']} first \\ second", *langs], rows, digits=1)
          + f"\ndiagonal mean {result['diagonal_mean']:.1f}, off-diagonal mean "
          + files.cell_text(result["off_diagonal_mean"], 1)
          + f" ({result['examples']} pairs per cell)\n")


def main_crosslingual(argv=None) -> int:
  """``xtjax crosslingual --checkpoint RUN_DIR[:phase] --tasks xnli,pawsx``."""
  p = argparse.ArgumentParser(prog="xtjax crosslingual",
                              description="language x language accuracy with the two sentences "
                                          "of each pair in different languages")
  p.add_argument("--checkpoint", required=True,
                 help="RUN_DIR[:phase] (default phase: the last finished train phase)")
  p.add_argument("--tasks", default="xnli", help=f"comma-separated, of {', '.join(PAIR_TASKS)}")
  p.add_argument("--languages", default="", help="comma-separated (default: those the run "
                                                 "evaluates, else all of the task's)")
  p.add_argument("--max-examples", type=int, default=0, help="first N pairs only (0: all)")
  p.add_argument("--batch-size", type=int, default=0, help="default: the run's eval batch size")
  p.add_argument("--out", default="", help="output folder (default RUN_DIR/crosslingual-PHASE)")
  args = p.parse_args(sys.argv[1:] if argv is None else argv)
  try:
    (ckpt,) = runs.resolve([args.checkpoint], every=False)
    out = Path(args.out or f"{ckpt.run.dir}/crosslingual-{ckpt.phase}")
    for task in [t for t in args.tasks.split(",") if t]:
      result = evaluate(ckpt, task, [l for l in args.languages.split(",") if l],
                        max_examples=args.max_examples, batch_size=args.batch_size)
      paths = write(result, out)
      print(table(result) + f"wrote {', '.join(str(p) for p in paths.values())}")
  except (ValueError, FileNotFoundError) as e:
    sys.stderr.write(f"xtjax crosslingual: {runs.one_line(e)}\n")
    return 2
  return 0
