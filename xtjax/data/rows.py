"""Upstream rows -> the fields of a task kind, with every malformed row counted by reason.

Fields per kind:
  classification      text_a, text_b, label (index into ``task.labels``)
  multiple_choice     premise, question, choices (list), label (index of the right choice)
  token_classification tokens (list), tags (indices into ``task.labels``)
  question_answering  id, question, context, answers ({"text": [...], "answer_start": [...]})

Malformed rows are excluded from the data and reported per reason (``report["malformed"]``); with
``strict`` any malformed row is an error. Nothing is dropped without being counted.
"""

from __future__ import annotations

import logging

import datasets

from xtjax.data import qa, tagging
from xtjax.data.tasks import Source, Task

log = logging.getLogger(__name__)

# jiant's COPA wording for the connective (the question column holds "cause" or "effect").
COPA_QUESTIONS = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}


def _names(ds: datasets.Dataset, column: str) -> list[str] | None:
  feature = ds.features[column]
  if isinstance(feature, datasets.Sequence):
    feature = feature.feature
  elif isinstance(feature, list):
    feature = feature[0]
  return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _text(value) -> str | None:
  return value if isinstance(value, str) and value.strip() else None


def _classification(row, source: Source, task: Task, names):
  a, b = _text(row[source.column("text_a")]), ""
  if source.column("text_b") in row:
    b = _text(row[source.column("text_b")])
  raw = row[source.column("label")]
  label = names[raw] if names and isinstance(raw, int) and 0 <= raw < len(names) else raw
  index = {l: i for i, l in enumerate(task.labels)}
  if a is None or b is None:
    return None, "missing text"
  if label not in index:
    return None, f"label {raw!r} not in {list(task.labels)}"
  return {"text_a": a, "text_b": b, "label": index[label]}, ""


def _choice_fields(row, source: Source, task: Task):
  """(premise, question, choices, raw label, label index) of one multiple-choice row."""
  if source.layout == "hellaswag":  # context ctx_a; each choice continues ctx_b (as jiant)
    choices = [f"{row['ctx_b']} {e}".strip() for e in row["endings"]]
    return row["ctx_a"], "", choices, row["label"], _int(row["label"])
  if source.layout == "commonsenseqa":  # the question is the context; answerKey is a letter
    keys = list(row["choices"]["label"])
    index = keys.index(row["answerKey"]) if row["answerKey"] in keys else -1
    return row["question"], "", list(row["choices"]["text"]), row["answerKey"], index
  choices = [row[source.column(f"choice{i + 1}")] for i in range(task.num_labels)]
  question = row[source.column("question")] if source.column("question") in row else ""
  raw = row[source.column("label")]
  label = _int(raw)
  return (row[source.column("premise")], COPA_QUESTIONS.get(question, question), choices, raw,
          label - source.label_offset if label >= 0 else -1)


def _int(value) -> int:
  try:
    return int(value)
  except (TypeError, ValueError):
    return -1


def _multiple_choice(row, source: Source, task: Task, names):
  premise, question, choices, raw, label = _choice_fields(row, source, task)
  if _text(premise) is None or len(choices) != task.num_labels or any(_text(c) is None for c in choices):
    return None, "missing text"
  if not 0 <= label < task.num_labels:
    return None, f"label {raw!r} not a choice index"
  return {"premise": premise, "question": question, "choices": choices, "label": label}, ""


def _token_classification(row, source: Source, task: Task, names):
  tokens, raw = row[source.column("tokens")], row[source.column("tags")]
  index = {l: i for i, l in enumerate(task.labels)}
  tags = [index.get(names[t] if names and 0 <= t < len(names) else t, -1) for t in raw]
  problem = tagging.check_row(tokens, tags, task.num_labels)
  return (None, problem) if problem else ({"tokens": list(tokens), "tags": tags}, "")


def _question_answering(row, source: Source, task: Task, names, *, training: bool):
  fields = {k: row[k] for k in ("id", "question", "context", "answers")}
  if not _text(fields["question"]) or not _text(fields["context"]):
    return None, "missing text"
  problem = qa.answer_problem(fields["context"], fields["answers"],
                              require_answer=training and not task.null_answers)
  return (None, problem) if problem else (fields, "")


_CONVERT = {"classification": _classification, "multiple_choice": _multiple_choice,
            "token_classification": _token_classification}
_EMPTY = {"classification": {"text_a": "", "text_b": "", "label": -1},
          "multiple_choice": {"premise": "", "question": "", "choices": [], "label": -1},
          "token_classification": {"tokens": [], "tags": []},
          "question_answering": {"id": "", "question": "", "context": "",
                                 "answers": {"text": [], "answer_start": []}}}


def normalize(ds: datasets.Dataset, source: Source, task: Task, *, training: bool,
              strict: bool = False) -> tuple[datasets.Dataset, dict]:
  """The kind's fields for every well-formed row, and the report ``{rows, kept, malformed}``."""
  label_column = source.column("tags" if task.kind == "token_classification" else "label")
  names = _names(ds, label_column) if label_column in ds.column_names else None
  if task.kind == "question_answering":
    convert = lambda row: _question_answering(row, source, task, names, training=training)
  else:
    convert = lambda row: _CONVERT[task.kind](row, source, task, names)

  def batch_convert(batch):
    keys = list(batch)
    out = {k: [] for k in list(_EMPTY[task.kind]) + ["problem"]}
    for values in zip(*(batch[k] for k in keys)):
      try:
        fields, problem = convert(dict(zip(keys, values)))
      except KeyError as e:
        raise ValueError(f"{source.describe()} has no column {e}: the task {task.name} reads "
                         f"{dict(source.columns) or 'the SQuAD columns'}") from None
      for k, v in (fields or _EMPTY[task.kind]).items():
        out[k].append(v)
      out["problem"].append(problem)
    return out

  ds = ds.map(batch_convert, batched=True, remove_columns=ds.column_names, desc="checking rows")
  problems = [p for p in ds["problem"] if p]
  report = {"rows": len(ds), "kept": len(ds) - len(problems), "malformed": {}}
  for p in problems:
    report["malformed"][p] = report["malformed"].get(p, 0) + 1
  if problems:
    msg = f"{source.describe()}: {len(problems)} malformed rows {report['malformed']}"
    if strict:
      raise ValueError(msg + " (data.strict is set; fix the data or unset data.strict)")
    log.warning("%s: excluded and reported", msg)
    ds = ds.filter(lambda p: [not x for x in p], input_columns=["problem"], batched=True)
  return ds.remove_columns("problem"), report
