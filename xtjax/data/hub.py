"""Hub datasets, and local mirrors of them with an Arrow cache that follows the files' content.

datasets keys the cache of a local dataset directory on its README metadata and folder name, so an
edited Parquet file is served stale from the cache, and removed rows fail with
NonMatchingSplitsSizesError. `load_hub_dataset` gives each content of a mirror config its own
cache, named by a fingerprint of the bytes of README.md and of the config's data files (a file is
hashed again only when its size, mtime, ctime or inode changed); before a new cache is built, the
row counts README.md records are checked against the files and every string against UTF-8, each
error one line naming the file and the fix. Caches of older contents of the same config are
removed.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import shutil
import uuid

import datasets
import pyarrow.parquet as pq

from xtjax.data import utf8

HASHES = "hashes.json"
CHECKED = "xtjax_checked"  # written into a cache once its files passed the checks


def _first_line(e: BaseException) -> str:
  line = next((l.strip() for l in str(e).splitlines() if l.strip()), "")
  return f"{type(e).__name__}: {line[:200]}"


def load_hub_dataset(path: str, config: str | None, split: str,
                     revision: str | None = None) -> datasets.Dataset:
  """One split of ``path``'s ``config``: a local directory laid out like the hub (see the module
  docstring), else a hub dataset id (at ``revision``)."""
  if os.path.isdir(path):
    return _load_mirror(path, config, split)
  where = f"{path} (config {config or 'default'}, split {split})"
  try:
    return datasets.load_dataset(path, config, split=split, revision=revision)
  except ValueError as e:  # an unknown config or split
    raise ValueError(f"cannot load {where}: {_first_line(e)}") from e
  except Exception as e:  # datasets raises many types for "not reachable"
    raise FileNotFoundError(f"cannot load {where}: {_first_line(e)} (check the network or "
                            "HF_DATASETS_OFFLINE, or set data.hub_mirror)") from e


def _root() -> str:
  return os.path.join(str(datasets.config.HF_DATASETS_CACHE), "xtjax_mirrors")


def _file_hashes(paths: list[str]) -> dict[str, str]:
  """sha256 of each file, remembered in the cache by (size, mtime, ctime, inode)."""
  memo_path = os.path.join(_root(), HASHES)
  try:
    with open(memo_path) as f:
      memo = json.load(f)
  except (OSError, ValueError):
    memo = {}
  out, changed = {}, False
  for path in paths:
    st = os.stat(path)
    key = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    entry = memo.get(path)
    if entry is None or entry[0] != key:
      with open(path, "rb") as f:
        entry = memo[path] = [key, hashlib.file_digest(f, "sha256").hexdigest()]
      changed = True
    out[path] = entry[1]
  if changed:
    os.makedirs(_root(), exist_ok=True)
    tmp = f"{memo_path}.{uuid.uuid4().hex}"
    with open(tmp, "w") as f:
      json.dump(memo, f)
    os.replace(tmp, memo_path)
  return out


def _fingerprint(path: str, config: str | None, files: dict[str, list[str]]) -> str:
  readme = os.path.join(path, "README.md")
  listed = [("readme", readme)] if os.path.exists(readme) else []
  listed += [(split, f) for split in sorted(files) for f in files[split]]
  hashes = _file_hashes([f for _, f in listed])
  parts = [str(config)] + [f"{key}:{os.path.relpath(f, path)}={hashes[f]}" for key, f in listed]
  return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _check_files(path: str, where: str, builder, files: dict[str, list[str]]) -> None:
  """Row counts recorded in README.md match the Parquet files, and their strings are UTF-8."""
  recorded = builder.info.splits or {}
  for split, names in files.items():
    parquet = [f for f in names if f.endswith(".parquet")]
    for f in parquet:
      utf8.check_parquet(f)
    if split in recorded and len(parquet) == len(names):
      found = sum(pq.ParquetFile(f).metadata.num_rows for f in parquet)
      expected = recorded[split].num_examples
      if expected and found != expected:
        shown = ", ".join(os.path.relpath(f, path) for f in parquet[:3])
        raise ValueError(
            f"{where}: README.md records {expected} rows for split {split} but its files have "
            f"{found} ({shown}{' ...' if len(parquet) > 3 else ''}): the files changed after "
            "README.md was written; update num_examples under dataset_info in README.md (or "
            "delete that entry), or restore the files")


def _load_mirror(path: str, config: str | None, split: str) -> datasets.Dataset:
  path = os.path.abspath(path)
  where = f"hub mirror {path} (config {config or 'default'})"
  try:
    builder = datasets.load_dataset_builder(path, config)
  except Exception as e:
    raise FileNotFoundError(f"cannot read {where}: {_first_line(e)}; the mirror needs the hub "
                            "layout (<config>/<split>-*.parquet and README.md)") from e
  files = {s: list(f) for s, f in (builder.config.data_files or {}).items()}
  if split not in files:
    raise ValueError(f"{where} has no split {split!r}: it has {', '.join(files) or 'none'}")
  name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{os.path.basename(path)}-{config or 'default'}")
  slug = f"{name}-{hashlib.sha1(path.encode()).hexdigest()[:8]}"
  cache = os.path.join(_root(), f"{slug}-{_fingerprint(path, config, files)[:16]}")
  fresh = not os.path.exists(os.path.join(cache, CHECKED))
  if fresh:
    _check_files(path, where, builder, files)
  try:
    ds = datasets.load_dataset(path, config, split=split, cache_dir=cache)
  except (datasets.exceptions.SplitsVerificationError, UnicodeDecodeError) as e:
    raise ValueError(f"{where}: {_first_line(e)}; the files do not match README.md or are not "
                     "UTF-8: fix the files or the dataset_info entry of README.md") from e
  if fresh:
    open(os.path.join(cache, CHECKED), "w").close()
    for old in glob.glob(os.path.join(glob.escape(_root()), f"{glob.escape(slug)}-*")):
      if old != cache:
        shutil.rmtree(old, ignore_errors=True)
  return ds
