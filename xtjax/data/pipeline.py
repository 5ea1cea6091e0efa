"""Where a task's rows come from: the Hugging Face hub (or a local mirror of its layout), or
tensorflow-datasets; either way the same upstream schema, checked by `xtjax.data.rows`."""

from __future__ import annotations

import os

import datasets

from xtjax.data import rows as rows_lib
from xtjax.data.tasks import Source, Task


def load_source(source: Source, *, hub_mirror: str | None = None) -> datasets.Dataset:
  """The split as a `datasets.Dataset` (configs concatenated, then filtered to its language);
  ``hub_mirror`` is a local directory laid out like the hub."""
  path = os.path.join(hub_mirror, source.repo) if hub_mirror else source.repo
  where = f"{path} (config {'+'.join(c or 'default' for c in source.configs)}, split {source.split})"
  if hub_mirror and not os.path.isdir(path):
    raise FileNotFoundError(f"data {where} is missing: {path} does not exist under "
                            "data.hub_mirror; write the mirror or unset data.hub_mirror")
  parts = []
  for config in source.configs:
    try:
      parts.append(datasets.load_dataset(path, config, split=source.split))
    except Exception as e:  # datasets raises many types for "not there"
      raise FileNotFoundError(
          f"cannot load {where}: {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''} "
          "(check the network or HF_DATASETS_OFFLINE, or set data.hub_mirror)") from e
  ds = parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)
  if source.language_value is not None:
    ds = ds.filter(lambda col: [c == source.language_value for c in col],
                   input_columns=[source.language_column], batched=True)
  if source.id_prefix is not None:
    ds = ds.filter(lambda col: [c.startswith(source.id_prefix) for c in col],
                   input_columns=["id"], batched=True)
  if len(ds) == 0:
    raise ValueError(f"{where} has no rows for language {source.language_value or source.id_prefix!r}")
  return ds


def load_rows(task: Task, split: str, language: str | None, data) -> tuple[datasets.Dataset, dict]:
  """The task's rows for one split (and language), normalised, with the malformed-row report.

  ``data`` is the run's data config: ``source`` ('hub' or 'tfds'), ``hub_mirror``,
  ``tfds_data_dir`` and ``strict``.
  """
  if data.source == "tfds":
    from xtjax.data.tfds_source import load_tfds
    ds, source = load_tfds(task.name, split, language, data.tfds_data_dir), task.source(split, language)
  elif data.source == "hub":
    source = task.source(split, language)
    ds = load_source(source, hub_mirror=data.hub_mirror)
  else:
    raise ValueError(f"unknown data.source {data.source!r}: use 'hub' or 'tfds'")
  return rows_lib.normalize(ds, source, task, training=split == "train", strict=data.strict)
