"""Upstream rows -> the fields of a task kind, with every malformed row counted by reason.

The kind's record (`xtjax.kinds`) says how one row converts and why it is malformed; this module
applies it to a whole split. Malformed rows are counted per reason (``report["malformed"]``):
training excludes them; evaluation keeps them, converted as well as the kind can, so that every
dev or test example is predicted and scored (as the official scorer scores it). With ``strict``
any malformed row is an error, and a split whose every row is malformed always is.
"""

from __future__ import annotations

import logging

import datasets

from xtjax.data.tasks import Source, Task

log = logging.getLogger(__name__)
ROW_ID = "row_id"  # a column normalize carries through: the row's place in its source


def _names(ds: datasets.Dataset, column: str) -> list[str] | None:
  feature = ds.features[column]
  if isinstance(feature, datasets.Sequence):
    feature = feature.feature
  elif isinstance(feature, list):
    feature = feature[0]
  return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def normalize(ds: datasets.Dataset, source: Source, task: Task, kind, *, training: bool,
              strict: bool = False) -> tuple[datasets.Dataset, dict]:
  """The ``kind``'s fields for every row (training: every well-formed row), and the report
  ``{rows, kept, malformed}`` (``kept``: the rows that go on). A ``ROW_ID`` column is kept."""
  label_column = source.column(kind.label_field)
  names = _names(ds, label_column) if label_column in ds.column_names else None

  def batch_convert(batch):
    keys = list(batch)
    carried = [ROW_ID] if ROW_ID in keys else []
    out = {k: [] for k in list(kind.fields) + ["problem"] + carried}
    for values in zip(*(batch[k] for k in keys)):
      row = dict(zip(keys, values))
      for k in carried:
        out[k].append(row[k])
      try:
        fields, problem = kind.convert(row, source, task, names, training)
      except KeyError as e:
        raise ValueError(f"{source.describe()} has no column {e}: the task {task.name} reads "
                         f"{dict(source.columns) or 'the upstream columns'}") from None
      for k, v in (fields or kind.fields).items():
        out[k].append(v)
      out["problem"].append(problem)
    return out

  ds = ds.map(batch_convert, batched=True, remove_columns=ds.column_names, desc="checking rows")
  problems = [p for p in ds["problem"] if p]
  report = {"rows": len(ds), "kept": len(ds) - len(problems) if training else len(ds),
            "malformed": {}}
  for p in problems:
    report["malformed"][p] = report["malformed"].get(p, 0) + 1
  if problems:
    msg = f"{source.describe()}: {len(problems)} malformed rows {report['malformed']}"
    if len(problems) == len(ds):
      raise ValueError(f"{msg}: every row is malformed; check that the source and its columns "
                       f"({dict(source.columns) or 'the upstream columns'}) are the task's")
    if strict:
      raise ValueError(msg + " (data.strict is set; fix the data or unset data.strict)")
    if training:
      log.warning("%s: excluded from training and reported", msg)
      ds = ds.filter(lambda p: [not x for x in p], input_columns=["problem"], batched=True)
    else:
      log.warning("%s: kept (every example is scored) and reported", msg)
  return ds.remove_columns("problem"), report
