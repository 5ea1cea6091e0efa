"""Few-shot target-language examples (Lauscher et al. 2020, arXiv 2005.00633): k well-formed rows
of a task in one language, drawn with a fixed seed from the language's train split where the task
has one, else from its dev split (`xtjax.data.tasks.Task.few_shot_source`), together with their
places in that split, so that evaluations of the resulting model on the same split leave them out.

The draw is a seeded permutation of the split's rows whose first k well-formed rows are taken: the
same seed gives the same rows, and a smaller k the first rows of a larger k's draw.
"""

from __future__ import annotations

import zlib

import datasets
import numpy as np

from xtjax import kinds
from xtjax.data import pipeline
from xtjax.data import rows as rows_lib
from xtjax.data.tasks import Source, Task, get_task


def permutation(source: Source, language: str, n: int, seed: int) -> np.ndarray:
  """The order in which rows of ``source`` (``n`` of them, in ``language``) are drawn."""
  key = zlib.crc32(f"{source.describe()}|{language}".encode())
  return np.random.default_rng([seed, key]).permutation(n)


def draw(task: Task, language: str, k: int, seed: int, data) -> tuple[datasets.Dataset, dict]:
  """(k normalised training rows of ``task`` in ``language``, their record: ``split``, ``source``
  (described), ``rows`` (their indices in the split, as evaluation reads it) and ``available``)."""
  if data.source == "tfds" and not data.get("ud_dir"):
    raise ValueError("few-shot examples are drawn from the hub's per-language splits: set "
                     "data.source='hub' for few-shot phases")
  split, source = task.few_shot_source(language)
  raw = pipeline.read_source(task, source, split, language, data)
  order = permutation(source, language, len(raw), seed)
  raw = raw.add_column(rows_lib.ROW_ID, list(range(len(raw))))
  take = min(len(raw), k)
  while True:  # normally once: only malformed rows among the first k make it look further
    rows, _ = rows_lib.normalize(raw.select(order[:take]), source, task, kinds.get(task.kind),
                                 training=True, strict=data.strict)
    if len(rows) >= k or take == len(raw):
      break
    take = min(len(raw), 2 * take)
  if len(rows) < k:
    raise ValueError(f"{source.describe()} has {len(rows)} well-formed rows in {language}, fewer "
                     f"than few_shot_k={k}")
  rows = rows.select(range(k))
  record = {"split": split, "source": source.describe(), "rows": list(rows[rows_lib.ROW_ID]),
            "available": len(raw)}
  return rows.remove_columns(rows_lib.ROW_ID), record


def held_out(task: Task, split: str, language: str, records) -> set[int]:
  """Rows of ``task``'s ``split`` in ``language`` that few-shot training used: ``records`` are
  the ``few_shot`` records of the phases a model comes from."""
  sources = task.sources(split, language)
  out = set()
  for record in records:
    used = record["languages"].get(language)
    if used and len(sources) == 1 and \
        get_task(record["task"]).few_shot_source(language)[1] == sources[0]:
      out.update(used["rows"])
  return out
