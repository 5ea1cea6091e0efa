"""From hub dataset to fixed-shape numpy batches: load, validate rows, tokenize, batch with grain.

Training batches come from a checkpointable grain iterator that shuffles anew each epoch and gives
each JAX process its own rows. Evaluation batches cover every example exactly once, padding the
last batch with masked rows (``example_mask`` 0), so results do not depend on the batch size.
"""

from __future__ import annotations

import logging
import os

import datasets
import grain
import jax
import numpy as np

from xtjax.data.tasks import Source, Task

log = logging.getLogger(__name__)


def load_source(source: Source, *, language: str | None = None, hub_mirror: str | None = None):
  """The split as a `datasets.Dataset`; ``hub_mirror`` is a local directory laid out like the hub."""
  path = os.path.join(hub_mirror, source.repo) if hub_mirror else source.repo
  where = f"{path} (config {source.config}, split {source.split})"
  if hub_mirror and not os.path.isdir(path):
    raise FileNotFoundError(f"data {where} is missing: {path} does not exist under "
                            "data.hub_mirror; write the mirror or unset data.hub_mirror")
  try:
    ds = datasets.load_dataset(path, source.config, split=source.split)
  except Exception as e:  # datasets raises many types for "not there"
    raise FileNotFoundError(f"cannot load {where}: {type(e).__name__}: {str(e).splitlines()[0]} "
                            "(check the network or HF_DATASETS_OFFLINE, or set data.hub_mirror)") from e
  if language is not None and source.language_column:
    ds = ds.filter(lambda col: [c == language for c in col], input_columns=[source.language_column],
                   batched=True)
    if len(ds) == 0:
      raise ValueError(f"{where} has no rows for language {language!r}")
  return ds


def label_names(ds: datasets.Dataset, column: str) -> list[str] | None:
  feature = ds.features[column]
  return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def normalize(ds: datasets.Dataset, source: Source, task: Task, *, strict: bool = False):
  """Rows as (text_a, text_b, label id); malformed rows are counted per reason, never hidden.

  Returns (dataset, report) where report = {"rows": n, "kept": k, "malformed": {reason: count}}.
  With ``strict``, any malformed row is an error.
  """
  names = label_names(ds, source.label)
  index = {l: i for i, l in enumerate(task.labels)}

  def convert(batch):
    out = {"text_a": [], "text_b": [], "label": [], "problem": []}
    n = len(batch[source.text_a])
    for i in range(n):
      a = batch[source.text_a][i]
      b = batch[source.text_b][i] if source.text_b else ""
      raw = batch[source.label][i]
      label = names[raw] if names is not None and isinstance(raw, int) and 0 <= raw < len(names) else raw
      problem = ""
      if not isinstance(a, str) or not a.strip() or (source.text_b and (not isinstance(b, str) or not b.strip())):
        problem = "missing text"
      elif label not in index:
        problem = f"label {raw!r} not in {list(task.labels)}"
      out["text_a"].append(a or "")
      out["text_b"].append(b or "")
      out["label"].append(index.get(label, -1))
      out["problem"].append(problem)
    return out

  ds = ds.map(convert, batched=True, remove_columns=ds.column_names, desc="checking rows")
  problems = [p for p in ds["problem"] if p]
  report = {"rows": len(ds), "kept": len(ds) - len(problems), "malformed": {}}
  for p in problems:
    report["malformed"][p] = report["malformed"].get(p, 0) + 1
  if problems:
    msg = f"{source.repo}/{source.config}/{source.split}: {len(problems)} malformed rows {report['malformed']}"
    if strict:
      raise ValueError(msg + " (data.strict is set; fix the data or unset data.strict)")
    log.warning("%s: excluded and reported", msg)
    ds = ds.filter(lambda p: [not x for x in p], input_columns=["problem"], batched=True)
  return ds.remove_columns("problem"), report


def tokenize(ds: datasets.Dataset, tokenizer, max_length: int, *, pair: bool) -> datasets.Dataset:
  """Token ids padded to ``max_length`` (static shapes), as numpy-formatted columns."""
  def encode(batch):
    enc = tokenizer(batch["text_a"], batch["text_b"] if pair else None, truncation=True,
                    max_length=max_length, padding="max_length")
    return {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]}

  ds = ds.map(encode, batched=True, remove_columns=["text_a", "text_b"], desc="tokenizing")
  return ds.with_format("numpy", columns=["input_ids", "attention_mask", "label"])


def _example(row) -> dict[str, np.ndarray]:
  return {"input_ids": row["input_ids"].astype(np.int32),
          "attention_mask": row["attention_mask"].astype(np.int32),
          "label": np.int32(row["label"]), "example_mask": np.int32(1)}


def train_batches(ds: datasets.Dataset, global_batch_size: int, seed: int) -> grain.DatasetIterator:
  """An endless, per-epoch reshuffled, checkpointable iterator of this process's batch rows."""
  n_proc, index = jax.process_count(), jax.process_index()
  if global_batch_size % n_proc:
    raise ValueError(f"batch size {global_batch_size} does not divide over {n_proc} processes")
  local = global_batch_size // n_proc
  if len(ds) < global_batch_size:
    raise ValueError(f"{len(ds)} training examples are fewer than one batch of {global_batch_size}")
  source = grain.MapDataset.source(ds).seed(seed).shuffle().repeat(None)
  return iter(source[index::n_proc].map(_example).batch(local, drop_remainder=True)
              .to_iter_dataset(grain.ReadOptions(num_threads=2, prefetch_buffer_size=4)))


def eval_batches(ds: datasets.Dataset, global_batch_size: int):
  """Every example once, in order: yields (this process's rows, number of real global rows)."""
  n_proc, index = jax.process_count(), jax.process_index()
  local = global_batch_size // n_proc
  for start in range(0, len(ds), global_batch_size):
    stop = min(start + global_batch_size, len(ds))
    lo, hi = min(start + index * local, stop), min(start + (index + 1) * local, stop)
    rows = ds[lo:hi] if hi > lo else None
    batch = {"input_ids": np.full((local, ds[0]["input_ids"].shape[0]), 1, np.int32),
             "attention_mask": np.zeros((local, ds[0]["input_ids"].shape[0]), np.int32),
             "label": np.zeros((local,), np.int32), "example_mask": np.zeros((local,), np.int32)}
    if rows is not None:
      k = hi - lo
      batch["input_ids"][:k] = rows["input_ids"]
      batch["attention_mask"][:k] = rows["attention_mask"]
      batch["label"][:k] = rows["label"]
      batch["example_mask"][:k] = 1
    yield batch, stop - start
