"""Where a task's rows come from: the Hugging Face hub (or a local mirror of its layout), or
tensorflow-datasets; either way the same upstream schema, checked by `xtjax.data.rows`."""

from __future__ import annotations

import dataclasses
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
  """The task's rows for one split (and language), normalised, with the malformed-row report;
  a split of several sources (ANLI+) is their concatenation, reported per source.

  ``data`` is the run's data config: ``source`` ('hub' or 'tfds'), ``hub_mirror``,
  ``tfds_data_dir``, ``ccgbank_dir``, ``mlm_sources`` and ``strict``.
  """
  if task.kind == "masked_lm":
    return _mlm_rows(split, data)
  parts, reports = [], {}
  for source in task.sources(split, language):
    ds = _load(task, source, split, language, data)
    ds, reports[source.describe()] = rows_lib.normalize(ds, source, task, training=split == "train",
                                                       strict=data.strict)
    parts.append(ds)
  if len(parts) == 1:
    return parts[0], next(iter(reports.values()))
  report = {"rows": sum(r["rows"] for r in reports.values()),
            "kept": sum(r["kept"] for r in reports.values()), "malformed": {}, "sources": reports}
  for r in reports.values():
    for reason, n in r["malformed"].items():
      report["malformed"][reason] = report["malformed"].get(reason, 0) + n
  return datasets.concatenate_datasets(parts), report


def _load(task: Task, source: Source, split: str, language: str | None, data) -> datasets.Dataset:
  if source.repo.startswith("tfds:"):  # data only TFDS has (XTREME's translations)
    from xtjax.data.tfds_source import load_tfds
    return load_tfds(source.repo[len("tfds:"):], split, source.configs[0], data.tfds_data_dir)
  if source.repo == "ccgbank":
    from xtjax.data.ccg import load_ccgbank
    return load_ccgbank(data.ccgbank_dir, split)
  if data.source == "tfds":  # a translate-train task's English part is its base task's
    from xtjax.data.tfds_source import load_tfds
    return load_tfds(task.name.removesuffix("_translate_train"), split, language,
                     data.tfds_data_dir)
  if data.source == "hub":
    return load_source(source, hub_mirror=data.hub_mirror)
  raise ValueError(f"unknown data.source {data.source!r}: use 'hub' or 'tfds'")


def _mlm_rows(split: str, data) -> tuple[datasets.Dataset, dict]:
  """Text of every ``data.mlm_sources`` entry (its last ``mlm_dev_texts`` lines are dev)."""
  from xtjax.data.mlm import load_text
  if not data.mlm_sources:
    raise ValueError("task mlm needs data.mlm_sources: hub text datasets ('repo[:config]') or "
                     "text files, e.g. --config.data.mlm_sources='(\"wikimedia/wikipedia:20231101.de\",)'")
  texts = []
  for source in data.mlm_sources:
    lines = load_text(source, max_lines=data.mlm_max_texts or None, hub_mirror=data.hub_mirror)
    cut = max(len(lines) - data.mlm_dev_texts, 0)
    texts += lines[:cut] if split == "train" else lines[cut:]
  return datasets.Dataset.from_dict({"text": texts}), {"rows": len(texts), "kept": len(texts),
                                                        "malformed": {}}


def resolve(task: Task, data) -> Task:
  """The task with labels known only from its data filled in (CCG supertags: every category of
  the three splits, numbered by train frequency, as jiant numbers them)."""
  if task.name != "ccg":
    return task
  from xtjax.data.ccg import load_ccgbank, tag_vocabulary
  splits = [load_ccgbank(data.ccgbank_dir, s) for s in ("train", "dev", "test")]
  train_tags = tag_vocabulary(splits[0])
  rest = sorted({t for ds in splits[1:] for tags in ds["tags"] for t in tags} - set(train_tags))
  return dataclasses.replace(task, labels=train_tags + tuple(rest))
