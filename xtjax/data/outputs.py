"""Model outputs -> predictions in the leaderboard's form, gold labels in the same form, and the
official metrics on them (`xtjax.metrics`, the same functions `xtjax score` applies to files).

Forms (what `xtjax.scoring.write_predictions` writes): classification, a label string per row;
multiple choice, a choice index per row; tagging, a tag list per sentence; QA, ``{id: answer}``.
"""

from __future__ import annotations

import numpy as np

from xtjax import metrics
from xtjax.data import qa, tagging
from xtjax.data.tasks import Task


def predictions(task: Task, rows, features: dict, logits: np.ndarray):
  rows = rows[:]  # columns as lists
  if task.kind == "classification":
    return [task.labels[i] for i in logits.argmax(-1)]
  if task.kind == "multiple_choice":
    return [int(i) for i in logits.argmax(-1)]
  if task.kind == "token_classification":
    tags = tagging.decode(features, logits, [len(t) for t in rows["tokens"]])
    return [[task.labels[t] for t in sentence] for sentence in tags]
  if task.kind == "question_answering":  # SQuAD v2: "" when the null score beats the best span
    return qa.decode(rows["context"], rows["id"], features, logits[..., 0], logits[..., 1],
                     null_score_diff_threshold=0.0 if task.null_answers else None)
  raise ValueError(f"no predictions for task kind {task.kind!r}")


def gold(task: Task, rows):
  rows = rows[:]
  if task.kind == "classification":
    return [task.labels[i] for i in rows["label"]]
  if task.kind == "multiple_choice":
    return list(rows["label"])
  if task.kind == "token_classification":
    return [[task.labels[t] for t in sentence] for sentence in rows["tags"]]
  return {i: a["text"] for i, a in zip(rows["id"], rows["answers"])}


def score(task: Task, predicted, labels, language: str) -> dict[str, float]:
  """The official metrics of ``task`` in ``language`` (MLQA normalises answers per language)."""
  if task.kind in ("classification", "multiple_choice"):
    return {"accuracy": metrics.accuracy(predicted, labels)}
  if task.kind == "token_classification":
    return metrics.tagging_scores(labels, predicted)
  if task.null_answers:
    return metrics.qa_scores(predicted, labels, version_2=True)
  return metrics.qa_scores(predicted, labels, language if task.name == "mlqa" else None)
