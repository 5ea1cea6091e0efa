"""Hub datasets, and local mirrors of them read straight from their files.

A mirror directory is laid out like a hub dataset repo: README.md lists each config's data files
(``configs``) and their row counts (``dataset_info``), the files are Parquet with datasets'
feature metadata. `load_hub_dataset` reads a mirror config's files with pyarrow into an in-memory
`datasets.Dataset` on every call, so an edited file is always seen (datasets' own cache keys a
local directory on its README and folder name, and served edits stale). Before a file is used, its
strings are checked for UTF-8 and the row counts README.md records are checked against the
files; each error is one line naming the file and the fix. README.md is parsed once per content
(with libyaml): a mirror of google/xtreme lists 183 configs, and datasets parsed it twice per load.
"""

from __future__ import annotations

import glob
import os

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from xtjax.data import utf8

_YAML = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_READMES: dict[tuple, dict] = {}  # file identity -> parsed README.md metadata
_CHECKED: set[tuple] = set()  # identities of Parquet files whose strings are valid UTF-8


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


def _identity(path: str) -> tuple:
  """Changes whenever the file is rewritten, even with its size and mtime restored (ctime)."""
  st = os.stat(path)
  return (path, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def _readme(path: str) -> dict:
  """The YAML metadata of ``path``/README.md ({} without one)."""
  readme = os.path.join(path, "README.md")
  if not os.path.exists(readme):
    return {}
  key = _identity(readme)
  if key not in _READMES:
    with open(readme, encoding="utf-8") as f:
      parts = f.read().split("---")
    _READMES[key] = (yaml.load(parts[1], Loader=_YAML) or {}) if len(parts) > 2 else {}
  return _READMES[key]


def _data_files(path: str, config: str | None, meta: dict) -> dict[str, list[str]]:
  """{split: files} of ``config``: README.md's ``configs`` entry, else the hub's Parquet
  conversion layout ``<config>/<split>/*.parquet``."""
  name = config or "default"
  for entry in meta.get("configs", []):
    if entry.get("config_name") == name:
      files = entry.get("data_files", [])
      files = [files] if isinstance(files, (str, dict)) else files
      out = {}
      for item in files:
        item = item if isinstance(item, dict) else {"split": "train", "path": item}
        patterns = item["path"] if isinstance(item["path"], list) else [item["path"]]
        out[item["split"]] = sorted(f for p in patterns
                                    for f in glob.glob(os.path.join(glob.escape(path), p)))
      return out
  return {os.path.basename(d): sorted(glob.glob(os.path.join(glob.escape(d), "*.parquet")))
          for d in sorted(glob.glob(os.path.join(glob.escape(path), glob.escape(name), "*")))
          if os.path.isdir(d)}


def _recorded_rows(meta: dict, config: str | None, split: str) -> int | None:
  for info in meta.get("dataset_info", []) if isinstance(meta.get("dataset_info"), list) else [
      meta.get("dataset_info") or {}]:
    if info.get("config_name", "default") == (config or "default"):
      for entry in info.get("splits", []):
        if entry.get("name") == split:
          return entry.get("num_examples")
  return None


def _read(file: str) -> pa.Table:
  key = _identity(file)
  if key not in _CHECKED:
    utf8.check_parquet(file)
    _CHECKED.add(key)
  return pq.read_table(file)


def _load_mirror(path: str, config: str | None, split: str) -> datasets.Dataset:
  path = os.path.abspath(path)
  where = f"hub mirror {path} (config {config or 'default'})"
  meta = _readme(path)
  files = _data_files(path, config, meta)
  if not files:
    known = [e.get("config_name") for e in meta.get("configs", [])]
    raise FileNotFoundError(f"{where} has no data: the mirror needs the hub layout "
                            f"(README.md configs, <config>/<split>-*.parquet); it has configs "
                            f"{', '.join(map(str, known)) or 'none'}")
  if split not in files:
    raise ValueError(f"{where} has no split {split!r}: it has {', '.join(files) or 'none'}")
  if not files[split]:
    raise FileNotFoundError(f"{where}: split {split} lists no existing files; restore them")
  tables = [_read(f) for f in files[split]]
  found = sum(t.num_rows for t in tables)
  expected = _recorded_rows(meta, config, split)
  if expected and found != expected:
    shown = ", ".join(os.path.relpath(f, path) for f in files[split][:3])
    raise ValueError(
        f"{where}: README.md records {expected} rows for split {split} but its files have "
        f"{found} ({shown}{' ...' if len(files[split]) > 3 else ''}): the files changed after "
        "README.md was written; update num_examples under dataset_info in README.md (or delete "
        "that entry), or restore the files")
  try:
    return datasets.Dataset(pa.concat_tables(tables, promote_options="default"))
  except (pa.ArrowInvalid, ValueError) as e:
    raise ValueError(f"{where}: the files of split {split} do not fit together "
                     f"({_first_line(e)}): rewrite them with one schema") from e
