"""A local hub mirror whose files change: an edit with the same row count (and the same mtime) is
seen, removed rows are a one-line error saying what differs, and invalid UTF-8 names the file and
row; datasets alone serves the edit stale from its cache. xtjax reads the files themselves, so
no cache can go stale."""

import os

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from xtjax.data import synthetic, utf8
from xtjax.data.hub import load_hub_dataset


@pytest.fixture
def mirror(tmp_path, monkeypatch):
  monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "cache"))
  repo = tmp_path / "hub" / "org" / "nli"
  rows = {"train": {"text": ["a", "b", "c"], "label": [0, 1, 2]},
          "test": {"text": ["x"], "label": [1]}}
  synthetic.write_hub_config(repo, "en",
                             {s: datasets.Dataset.from_dict(r) for s, r in rows.items()})
  return str(repo), str(repo / "en" / "train-00000-of-00001.parquet")


def rewrite(path: str, table: pa.Table) -> None:
  """Writes ``table`` over ``path`` keeping its mtime, as copies that preserve times do."""
  st = os.stat(path)
  pq.write_table(table, path)
  os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_an_edited_mirror_file_is_seen(mirror, tmp_path):
  repo, train = mirror
  assert load_hub_dataset(repo, "en", "train")["text"][:] == ["a", "b", "c"]
  plain = datasets.load_dataset(repo, "en", split="train", cache_dir=str(tmp_path / "plain"))
  assert plain["text"][:] == ["a", "b", "c"]
  rewrite(train, pa.table({"text": ["A", "B", "C"], "label": [2, 1, 0]}))
  edited = load_hub_dataset(repo, "en", "train")
  assert edited["text"][:] == ["A", "B", "C"] and edited["label"][:] == [2, 1, 0]
  assert load_hub_dataset(repo, "en", "test")["text"][:] == ["x"]
  # What xtjax called before: datasets keys its cache on README.md and the folder, not the bytes.
  stale = datasets.load_dataset(repo, "en", split="train", cache_dir=str(tmp_path / "plain"))
  assert stale["text"][:] == ["a", "b", "c"]


def test_features_come_from_the_files_and_nothing_is_cached(mirror, tmp_path):
  repo, _ = mirror
  ds = load_hub_dataset(repo, "en", "train")
  assert ds.cache_files == [] and not (tmp_path / "cache").exists()
  assert ds.features == datasets.Features({"text": datasets.Value("string"),
                                           "label": datasets.Value("int64")})


def test_removed_rows_are_an_error_saying_what_differs(mirror):
  repo, train = mirror
  load_hub_dataset(repo, "en", "train")
  rewrite(train, pa.table({"text": ["a"], "label": [0]}))
  with pytest.raises(ValueError) as e:
    load_hub_dataset(repo, "en", "train")
  message = str(e.value)
  assert "\n" not in message and "network" not in message
  assert "README.md records 3 rows for split train but its files have 1" in message
  assert "en/train-00000-of-00001.parquet" in message and "num_examples" in message


def test_unknown_splits_and_configs_are_one_line_errors(mirror):
  repo, _ = mirror
  with pytest.raises(ValueError, match="has no split 'validation': it has train, test"):
    load_hub_dataset(repo, "en", "validation")
  with pytest.raises(FileNotFoundError, match=r"\(config de\) has no data: .* it has configs en"):
    load_hub_dataset(repo, "de", "train")


def test_invalid_utf8_names_the_file_and_row(mirror, tmp_path):
  repo, train = mirror
  text = pa.array([b"a", b"b", b"caf\xe9"], pa.binary()).view(pa.string())
  rewrite(train, pa.table({"text": text, "label": [0, 1, 2]}))
  with pytest.raises(ValueError, match=f"^{train} row 2 \\(column text\\) is not valid UTF-8: "
                                       "re-encode"):
    load_hub_dataset(repo, "en", "train")
  lines = tmp_path / "mlm.txt"
  lines.write_bytes(b"one\ntwo\ncaf\xe9 au lait\n")
  with pytest.raises(ValueError, match=f"^{lines} line 3 is not valid UTF-8 \\(byte 3"):
    list(utf8.read_lines(str(lines)))
