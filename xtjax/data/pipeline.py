"""Where a task's rows come from: the Hugging Face hub (or a local mirror of its layout), or
tensorflow-datasets; either way the same upstream schema, checked by `xtjax.data.rows`."""

from __future__ import annotations

import dataclasses
import glob
import logging
import os

import datasets

from xtjax import kinds
from xtjax.data import ccg, hub, tfds_source, udpos, utf8
from xtjax.data import rows as rows_lib
from xtjax.data.tasks import PARQUET, Source, Task

log = logging.getLogger(__name__)
_CHUNK = 10_000  # texts per batch read from a hub text dataset


def load_source(source: Source, *, hub_mirror: str | None = None) -> datasets.Dataset:
  """The split as a `datasets.Dataset` (configs concatenated, then filtered to its language);
  ``hub_mirror`` is a local directory laid out like the hub, holding for each repo the revision
  xtjax reads (``source.revision`` on the hub)."""
  path = os.path.join(hub_mirror, source.repo) if hub_mirror else source.repo
  where = f"{path} (config {'+'.join(c or 'default' for c in source.configs)}, split {source.split})"
  if hub_mirror and not os.path.isdir(path):
    raise FileNotFoundError(f"data {where} is missing: {path} does not exist under "
                            "data.hub_mirror; write the mirror or unset data.hub_mirror")
  if hub_mirror and _script_only(path):
    raise FileNotFoundError(
        f"{path} holds only a loading script, which datasets >= 4 does not run: mirror the "
        f"Parquet files of {source.repo} at revision {source.revision or PARQUET} (the hub's "
        "conversion) instead")
  parts = [hub.load_hub_dataset(path, config, source.split, source.revision)
           for config in source.configs]
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


def _script_only(path: str) -> bool:
  """A repo directory with a loading script and no data files (as several hub repos' main)."""
  files = [f for f in glob.glob(os.path.join(glob.escape(path), "**", "*"), recursive=True)
           if os.path.isfile(f)]
  return any(f.endswith(".py") for f in files) and not any(
      f.endswith((".parquet", ".arrow", ".json", ".jsonl", ".csv", ".tsv", ".txt")) for f in files)


def load_rows(task: Task, split: str, language: str | None, data) -> tuple[datasets.Dataset, dict]:
  """The task's rows for one split (and language), normalised, with the malformed-row report;
  a split of several sources (ANLI+) is their concatenation, reported per source.

  ``data`` is the run's data config: ``source`` ('hub' or 'tfds'), ``hub_mirror``,
  ``tfds_data_dir``, ``ccgbank_dir``, ``mlm_sources``, ``strict``, ``translations`` and
  ``translate_languages`` (translate-train tasks: only these translations; none: all).
  """
  if task.kind == "masked_lm":
    return _mlm_rows(split, data)
  parts, reports = [], {}
  only = tuple(data.get("translate_languages") or ())
  for source in task.sources(split, language):
    if source.translation and only and source.translation not in only:
      continue  # a translate-train task restricted to some of its languages
    ds = read_source(task, source, split, language, data)
    ds, reports[hub_translation(source, data).describe()] = rows_lib.normalize(
        ds, source, task, kinds.get(task.kind), training=split == "train", strict=data.strict)
    parts.append(ds)
  if len(parts) == 1:
    return parts[0], next(iter(reports.values()))
  report = {"rows": sum(r["rows"] for r in reports.values()),
            "kept": sum(r["kept"] for r in reports.values()), "malformed": {}, "sources": reports}
  for r in reports.values():
    for reason, n in r["malformed"].items():
      report["malformed"][reason] = report["malformed"].get(reason, 0) + n
  return datasets.concatenate_datasets(parts), report


def hub_translation(source: Source, data) -> Source:
  """A TFDS translate-train source as the hub dataset ``data.translations`` names for its task
  (one config per language), or ``source`` itself."""
  hub = (data.get("translations") or {}).get(source.repo.removeprefix("tfds:"))
  return dataclasses.replace(source, repo=hub) if source.repo.startswith("tfds:") and hub \
      else source


def read_source(task: Task, source: Source, split: str, language: str | None,
                data) -> datasets.Dataset:
  """The upstream rows of one ``source`` of ``task``'s split, before `rows.normalize`."""
  source = hub_translation(source, data)
  if source.repo.startswith("tfds:"):  # data only TFDS has (XTREME's translations)
    return tfds_source.load_tfds(source.repo[len("tfds:"):], split, source.configs[0],
                                 data.tfds_data_dir)
  if source.repo == "ccgbank":
    return ccg.load_ccgbank(data.ccgbank_dir, split)
  if source.ud and data.get("ud_dir"):  # the official UD release, read as XTREME does
    ds = udpos.load_udpos(data["ud_dir"], source.ud, source.split)
    tags = source.column("tags")
    return ds if tags == "pos_tags" else ds.rename_column("pos_tags", tags)
  if data.source == "tfds":  # a translate-train task's English part is its base task's
    return tfds_source.load_tfds(task.name.removesuffix("_translate_train"), split, language,
                                 data.tfds_data_dir)
  if data.source == "hub":
    return load_source(source, hub_mirror=data.hub_mirror)
  raise ValueError(f"unknown data.source {data.source!r}: use 'hub' or 'tfds'")


def _mlm_rows(split: str, data) -> tuple[datasets.Dataset, dict]:
  """Text of every ``data.mlm_sources`` entry (its last ``mlm_dev_texts`` lines are dev)."""
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
  splits = [ccg.load_ccgbank(data.ccgbank_dir, s) for s in ("train", "dev", "test")]
  train_tags = ccg.tag_vocabulary(splits[0])
  rest = sorted({t for ds in splits[1:] for tags in ds["tags"] for t in tags} - set(train_tags))
  return dataclasses.replace(task, labels=train_tags + tuple(rest))


def load_text(source: str, *, split: str = "train", column: str = "text",
              max_lines: int | None = None, hub_mirror: str | None = None) -> list[str]:
  """Texts (stripped, blank ones skipped and counted in the log) from local ``.txt`` files, one text
  per line (a path or glob), or from a hub dataset given as ``repo[:config]`` (``hub_mirror``: a
  local directory laid out like the hub); at most ``max_lines`` of them."""
  if os.path.isfile(source) or source.endswith(".txt") or any(c in source for c in "*?["):
    files = sorted(glob.glob(source, recursive=True))
    if not files:
      raise FileNotFoundError(f"no text files at {source}: give an existing .txt path or glob "
                              "(one text per line), or a hub dataset as repo[:config]")
    where = f"{source} ({len(files)} files)"
    lines = _file_lines(files)
  else:
    repo, _, config = source.partition(":")
    ds = load_source(Source(repo, (config or None,), split), hub_mirror=hub_mirror)
    if column not in ds.column_names:
      raise ValueError(f"{source} (split {split}) has no column {column!r}: "
                       f"choose from {ds.column_names}")
    where = f"{source} (split {split}, column {column})"
    lines = (text for batch in ds.select_columns([column]).iter(batch_size=_CHUNK)
             for text in batch[column])
  texts, blank = [], 0
  for line in lines:
    if max_lines is not None and len(texts) >= max_lines:
      break
    text = line.strip() if isinstance(line, str) else ""
    if text:
      texts.append(text)
    else:
      blank += 1
  log.info("%s: %d texts, %d blank lines skipped", where, len(texts), blank)
  return texts


def _file_lines(files):
  for name in files:
    yield from utf8.read_lines(name)
