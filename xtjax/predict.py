"""Task data as features, model outputs for every feature row, and the official scores of a split.

``predict`` runs a jitted eval step over length-bucketed batches (`xtjax.data.batches`) and gathers
the outputs of every host, in feature order; ``evaluate_split`` turns them into predictions in the
leaderboard's form and scores them with the task kind's official metric (`xtjax.kinds`).
"""

from __future__ import annotations

import logging
from typing import Any

import jax
import numpy as np
from jax.experimental import multihost_utils

from xtjax import kinds
from xtjax import sharding as shd
from xtjax.data import batches, pipeline
from xtjax.data.tasks import Task

log = logging.getLogger(__name__)


def load_task_data(run, task: Task, split: str, language: str | None, data, limit: int = 0,
                   exclude=frozenset()):
  """(rows, features, malformed-row report) of one split of ``task`` (its first ``limit`` rows),
  without the rows whose indices are in ``exclude`` (few-shot training rows)."""
  rows, report = pipeline.load_rows(task, split, language, data)
  positions = run.model_cfg.max_position_embeddings - 2  # RoBERTa's positions start after pad
  if data.max_length > positions:
    raise ValueError(f"data.max_length {data.max_length} exceeds the {positions} token positions "
                     f"of {run.hf_path}: lower data.max_length (for {task.name} {split})")
  if exclude:
    rows = rows.select([i for i in range(len(rows)) if i not in exclude])
    report = {**report, "few_shot_excluded": len(exclude)}
  if limit:
    rows = rows.select(range(min(limit, len(rows))))
  pair = "text_b" in dict(task.sources(split, language)[0].columns)
  features = kinds.get(task.kind).encode(rows[:], run.tokenizer, data, training=split == "train",
                                         pair=pair)
  return rows, features, report


def predict(run, eval_step, params, features: dict, *, token_level: bool, batch_size: int,
            buckets, keys=batches.INPUTS) -> np.ndarray:
  """Outputs for every feature row, in order, gathered to every host. Token-level outputs are
  padded to the features' length with -1e9."""
  n, length = batches.num_rows(features), features["input_ids"].shape[-1]
  log.info("predicting %d rows in %d length bucket(s)", n,
           batches.count_buckets(features, buckets, batch_size))
  out = None
  for local, rows in batches.eval_batches(features, keys, batch_size, buckets):
    outputs = eval_step(params, shd.global_batch(local, run.batch_sh))
    if jax.process_count() > 1:
      outputs = multihost_utils.process_allgather(outputs, tiled=True)
    outputs = np.asarray(outputs)[:len(rows)]
    if out is None:
      shape = (n, length) + outputs.shape[2:] if token_level else (n,) + outputs.shape[1:]
      out = np.full(shape, -1e9, np.float32)
    if token_level:
      out[rows, :outputs.shape[1]] = outputs
    else:
      out[rows] = outputs
  return out


def evaluate_split(run, task: Task, eval_step, params, rows, features, language: str, data,
                   batch_size: int) -> tuple[Any, dict[str, float]]:
  """Predictions (leaderboard form) and the official scores of one split in one language."""
  kind = kinds.get(task.kind)
  logits = predict(run, eval_step, params, features, token_level=kind.token_level,
                   batch_size=batch_size, buckets=data.eval_buckets)
  columns = rows[:]
  predicted = kind.predictions(task, columns, features, logits, data, language, run.tokenizer)
  return predicted, kind.score(task, predicted, kind.gold(task, columns), language)
