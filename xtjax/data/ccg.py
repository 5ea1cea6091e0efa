"""CCG supertagging rows from a local CCGbank (LDC2005T13, licensed, so never downloaded).

Splits follow jiant, which the paper used: its ``scripts/ccg/ccg_proc.py`` takes WSJ sections
00-18 for train, 19-21 for dev and 22-24 for test (the POS-tagging split), not the usual
supertagging split of Clark & Curran (2007) (train 02-21, dev 00, test 23). Each sentence gives
one row: ``tokens`` (the words) and ``tags`` (each word's lexical category), as jiant takes
them from the leaves of the AUTO derivations. Files are read in sorted order (jiant lists them
in directory order).

Two layouts are read:
  AUTO     the release's ``<path>/data/AUTO/<ss>/wsj_<ss><nn>.auto`` (or ``<path>`` = ``AUTO``):
           ``ID=wsj_0001.1 PARSER=GOLD NUMPARSE=1`` lines, each followed by its derivation on
           one line, with leaves ``(<L category modified-POS original-POS word pred-arg-cat>)``
           (CCGbank manual, appendix D.2). Words are read by field position, so ones holding
           ")" or ">" are kept whole; trees are checked for balance and child counts.
  jiant    jiant's preprocessed ``<path>/ccg.{train,dev,test}``: per line the space-joined words,
           a tab, and the space-joined categories (``ccg_proc.py``'s output).
"""

from __future__ import annotations

import collections
import glob
import os
import re

import datasets

from xtjax.data import utf8

SPLITS = {"train": tuple(f"{s:02d}" for s in range(19)),
          "dev": ("19", "20", "21"), "test": ("22", "23", "24")}
FEATURES = datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                              "tags": datasets.Sequence(datasets.Value("string"))})
_LICENSE = ("CCGbank is licensed by the LDC (LDC2005T13) and is not downloaded: obtain it and set "
            "data.ccgbank_dir to the directory containing data/AUTO (sections 00-24)")
# One derivation token: a node header (<T category head children ...>, a leaf
# (<L category modified-POS original-POS word pred-arg...>), or the ")" closing a node.
_TOKEN = re.compile(r"\s*(?:\(<T ([^<>]*)>|\(<L ([^\s<>]+) (\S+) (\S+) (\S+) [^<>]*?>\)|(\)))")


def _leaves(line: str) -> list[tuple[str, str]] | None:
  """(word, category) of each leaf of a one-line derivation, or None when it is malformed."""
  leaves, open_nodes, roots, pos = [], [], 0, 0  # open_nodes: [children declared, seen]
  line = line.rstrip()
  while pos < len(line):
    m = _TOKEN.match(line, pos)
    if m is None:
      return None
    pos = m.end()
    header, category, word, close = m.group(1), m.group(2), m.group(5), m.group(6)
    if close:
      if not open_nodes or open_nodes[-1][0] != open_nodes[-1][1]:
        return None
      open_nodes.pop()
    if header is not None or category is not None:
      if open_nodes:
        open_nodes[-1][1] += 1
      else:
        roots += 1
    if header is not None:
      fields = header.split()
      if len(fields) < 3 or not fields[2].isdigit():
        return None
      open_nodes.append([int(fields[2]), 0])
    elif category is not None:
      leaves.append((word, category))
  return leaves if roots == 1 and not open_nodes else None


def _read_auto(file: str, rows: dict[str, list]) -> None:
  header = None  # line number of the ID line awaiting its derivation
  for n, line in enumerate(utf8.read_lines(file), 1):
    if not line.strip():
      continue
    if line.startswith("ID="):
      if header is not None:
        raise ValueError(f"{file}:{header}: ID line without a derivation; the file is "
                         "damaged, restore it from the CCGbank release")
      header = n
      continue
    leaves = _leaves(line) if header is not None else None
    if not leaves:
      raise ValueError(f"{file}:{n}: malformed CCGbank derivation line (expected one "
                       "bracketed (<T ...> / (<L ...>) tree after an ID= line); restore the "
                       "file from the CCGbank release")
    rows["tokens"].append([w for w, _ in leaves])
    rows["tags"].append([c for _, c in leaves])
    header = None
  if header is not None:
    raise ValueError(f"{file}:{header}: ID line without a derivation; the file is damaged, "
                     "restore it from the CCGbank release")


def _read_jiant(file: str, rows: dict[str, list]) -> None:
  for n, line in enumerate(utf8.read_lines(file), 1):
    fields = line.strip().split("\t")
    words, tags = (fields[0].split(" "), fields[1].split(" ")) if len(fields) == 2 else ([], [])
    if not words or len(words) != len(tags) or "" in words or "" in tags:
      raise ValueError(f"{file}:{n}: malformed jiant CCG line (expected space-separated words, "
                       "a tab, and as many space-separated categories); regenerate it with "
                       "jiant's scripts/ccg/ccg_proc.py")
    rows["tokens"].append(words)
    rows["tags"].append(tags)


def load_ccgbank(path: str | None, split: str) -> datasets.Dataset:
  """The split's sentences as ``tokens`` and ``tags`` (lexical categories), from a local CCGbank
  (or jiant's ``ccg.<split>`` files) at ``path``, the value of ``data.ccgbank_dir``."""
  if split not in SPLITS:
    raise ValueError(f"unknown CCG split {split!r}; use one of {', '.join(SPLITS)}")
  sections = SPLITS[split]
  if path is None:
    raise FileNotFoundError(f"{_LICENSE}; data.ccgbank_dir is not set")
  looked = (f"looked for {os.path.join(path, 'data', 'AUTO', '<ss>', 'wsj_<ss><nn>.auto')} or "
            f"{os.path.join(path, '<ss>', 'wsj_<ss><nn>.auto')} with sections <ss> "
            f"{sections[0]}-{sections[-1]}, and jiant's {os.path.join(path, 'ccg.' + split)}")
  if not os.path.isdir(path):
    raise FileNotFoundError(f"{_LICENSE}; {path} does not exist ({looked})")
  rows = {"tokens": [], "tags": []}
  tsv = os.path.join(path, f"ccg.{split}")
  if os.path.isfile(tsv):
    _read_jiant(tsv, rows)
    return datasets.Dataset.from_dict(rows, features=FEATURES)
  auto = os.path.join(path, "data", "AUTO")
  auto = auto if os.path.isdir(auto) else path
  if not any(os.path.isdir(os.path.join(auto, f"{s:02d}")) for s in range(25)):
    raise FileNotFoundError(f"{_LICENSE}; found no section directories under {path} ({looked})")
  for section in sections:
    folder = os.path.join(auto, section)
    files = sorted(glob.glob(os.path.join(glob.escape(folder), f"wsj_{section}[0-9][0-9].auto")))
    if not files:
      what = "does not exist" if not os.path.isdir(folder) else "has no wsj_*.auto files"
      raise FileNotFoundError(f"CCGbank section {section} is missing: {folder} {what}; the {split} "
                              f"split needs sections {sections[0]}-{sections[-1]}, so copy the "
                              "full data/AUTO (00-24) from the release")
    for file in files:
      _read_auto(file, rows)
  return datasets.Dataset.from_dict(rows, features=FEATURES)


def tag_vocabulary(train: datasets.Dataset, min_count: int = 1) -> tuple[str, ...]:
  """The categories seen at least ``min_count`` times in ``train``, most frequent first, ties by
  name. Categories absent here are not added: at dev/test the caller reports their rows as
  malformed. (jiant instead numbers every category of train, test and dev: 1363 labels.)"""
  if min_count < 1:
    raise ValueError(f"min_count must be at least 1, got {min_count}")
  counts = collections.Counter(tag for tags in train["tags"] for tag in tags)
  return tuple(sorted((t for t, c in counts.items() if c >= min_count),
                      key=lambda t: (-counts[t], t)))
