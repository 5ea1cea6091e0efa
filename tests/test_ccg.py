"""CCGbank reading: a tiny fake release in the AUTO format gives jiant's splits, the exact words and
categories of every leaf, the train tag vocabulary, and one-line errors for what is missing."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from xtjax.data.ccg import load_ccgbank, tag_vocabulary

# Derivations in the release's AUTO format: (<T category head children> ...) nodes and
# (<L category modified-POS original-POS word pred-arg-category>) leaves.
VINKEN = (r"(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<T NP 0 1> (<L N NNP NNP Vinken N>) ) "
          r"(<T S[dcl]\NP 0 2> (<L (S[dcl]\NP)/NP VBD VBD joined (S[dcl]\NP_10)/NP_11>) "
          r"(<T NP 1 2> (<L NP[nb]/N DT DT the NP[nb]_29/N_29>) (<L N NN NN board N>) ) ) ) "
          r"(<L . . . . .>) )")
PRICES = (r"(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<T NP 0 1> (<L N NNS NNS Prices N>) ) "
          r"(<T S[dcl]\NP 0 2> (<L (S[dcl]\NP)/NP VBD VBD rose (S[dcl]\NP_1)/NP_2>) "
          r"(<T NP 0 1> (<L N CD CD 3/4 N>) ) ) ) (<L . . . . .>) )")
SALES = (r"(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<T NP 0 2> (<T NP 0 1> (<L N NNS NNS Sales N>) ) "
         r"(<T NP\NP 0 2> (<T NP\NP 0 2> (<L LRB -LRB- -LRB- -LRB- LRB>) "
         r"(<L NP\NP JJ JJ net NP_1\NP_1>) ) (<L RRB -RRB- -RRB- -RRB- RRB>) ) ) "
         r"(<L S[dcl]\NP VBD VBD fell S[dcl]\NP_5>) ) (<L . . . . .>) )")
# Words holding ")" and ">" (not in WSJ, but the leaf syntax allows them).
SMILE = (r"(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<L NP PRP PRP He NP>) (<T S[dcl]\NP 0 2> "
         r"(<L (S[dcl]\NP)/NP VBD VBD wrote (S[dcl]\NP_1)/NP_2>) (<T NP 0 2> "
         r"(<L N/N SYM SYM :-) N_3/N_3>) (<L N CD CD 3>2 N>) ) ) ) (<L . . . . .>) )")
YES = (r"(<T S[dcl] 0 2> (<T S[dcl] 1 2> (<L S/S UH UH Yes S_1/S_1>) (<T S[dcl] 1 2> "
       r"(<L , , , , ,>) (<T S[dcl] 1 2> (<L NP PRP PRP it NP>) "
       r"(<L S[dcl]\NP VBZ VBZ works S[dcl]\NP_2>) ) ) ) (<L . . . . .>) )")
FINIS = r"(<L N NN NN Finis N>)"

FILES = {("00", "01"): [("wsj_0001.1", VINKEN)], ("00", "02"): [("wsj_0002.1", PRICES)],
         ("02", "01"): [("wsj_0201.1", SALES)], ("21", "01"): [("wsj_2101.1", SMILE)],
         ("23", "01"): [("wsj_2301.1", YES), ("wsj_2301.2", FINIS)]}
ROWS = {
    "train": [(["Vinken", "joined", "the", "board", "."],
               ["N", r"(S[dcl]\NP)/NP", "NP[nb]/N", "N", "."]),
              (["Prices", "rose", "3/4", "."], ["N", r"(S[dcl]\NP)/NP", "N", "."]),
              (["Sales", "-LRB-", "net", "-RRB-", "fell", "."],
               ["N", "LRB", r"NP\NP", "RRB", r"S[dcl]\NP", "."])],
    "dev": [(["He", "wrote", ":-)", "3>2", "."], ["NP", r"(S[dcl]\NP)/NP", "N/N", "N", "."])],
    "test": [(["Yes", ",", "it", "works", "."], ["S/S", ",", "NP", r"S[dcl]\NP", "."]),
             (["Finis"], ["N"])]}


def _write(root, files=FILES):
  """A CCGbank release under ``root``: data/AUTO/00-24, one file per section (most empty)."""
  auto = root / "data" / "AUTO"
  for s in range(25):
    (auto / f"{s:02d}").mkdir(parents=True)
    (auto / f"{s:02d}" / f"wsj_{s:02d}01.auto").write_text("")
  for (section, n), sentences in files.items():
    text = "".join(f"ID={i} PARSER=GOLD NUMPARSE=1\n{d}\n" for i, d in sentences)
    (auto / section / f"wsj_{section}{n}.auto").write_text(text)
  return auto


def _rows(ds):
  return list(zip(ds["tokens"], ds["tags"]))


@pytest.fixture
def release(tmp_path):
  _write(tmp_path)
  return tmp_path


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_splits_follow_jiant(release, split):
  ds = load_ccgbank(str(release), split)
  assert ds.column_names == ["tokens", "tags"]
  assert _rows(ds) == ROWS[split]
  # <path> may also be the AUTO directory itself.
  assert _rows(load_ccgbank(str(release / "data" / "AUTO"), split)) == ROWS[split]


def test_jiant_tsv_reads_like_the_release(release, tmp_path):
  jiant = tmp_path / "jiant"
  jiant.mkdir()
  for split, rows in ROWS.items():  # what jiant's scripts/ccg/ccg_proc.py writes
    (jiant / f"ccg.{split}").write_text(
        "".join(f"{' '.join(w)}\t{' '.join(t)}\n" for w, t in rows))
    assert _rows(load_ccgbank(str(jiant), split)) == _rows(load_ccgbank(str(release), split))


def test_tag_vocabulary_by_frequency_then_name(release):
  train = load_ccgbank(str(release), "train")
  assert tag_vocabulary(train) == ("N", ".", r"(S[dcl]\NP)/NP", "LRB", "NP[nb]/N", r"NP\NP",
                                   "RRB", r"S[dcl]\NP")
  assert tag_vocabulary(train, min_count=2) == ("N", ".", r"(S[dcl]\NP)/NP")
  with pytest.raises(ValueError, match="min_count must be at least 1"):
    tag_vocabulary(train, min_count=0)


def test_missing_ccgbank_says_how_to_get_it(tmp_path):
  license_ = r"licensed by the LDC \(LDC2005T13\).*data\.ccgbank_dir.*data/AUTO \(sections 00-24\)"
  with pytest.raises(FileNotFoundError, match=license_ + ".*is not set"):
    load_ccgbank(None, "train")
  with pytest.raises(FileNotFoundError, match=license_ + ".*nowhere does not exist.*looked for"):
    load_ccgbank(str(tmp_path / "nowhere"), "train")
  with pytest.raises(FileNotFoundError,
                     match=license_ + r".*no section directories.*wsj_<ss><nn>\.auto.*ccg\.dev"):
    load_ccgbank(str(tmp_path), "dev")
  with pytest.raises(ValueError, match="unknown CCG split 'validation'; use one of train, dev"):
    load_ccgbank(str(tmp_path), "validation")


def test_missing_section_is_named(release):
  shutil.rmtree(release / "data" / "AUTO" / "19")
  with pytest.raises(FileNotFoundError,
                     match=r"section 19 is missing: .*AUTO/19 does not exist; the dev split needs "
                           r"sections 19-21"):
    load_ccgbank(str(release), "dev")
  os.remove(release / "data" / "AUTO" / "22" / "wsj_2201.auto")
  with pytest.raises(FileNotFoundError, match=r"section 22 is missing: .* has no wsj_\*\.auto"):
    load_ccgbank(str(release), "test")


@pytest.mark.parametrize("line", [
    SALES[:-2],  # unclosed node
    SALES + " )",  # one close too many
    SALES.replace("(<L N NNS NNS Sales N>)", "(<L N NNS Sales N>)"),  # leaf missing a field
    SALES.replace("<T NP\\NP 0 2> (<T", "<T NP\\NP 0 3> (<T"),  # wrong child count
    SALES + " " + FINIS,  # two trees
    "(<T S[dcl] 0 2>",
    "Sales fell .",
])
def test_malformed_derivation_names_file_and_line(tmp_path, line):
  auto = _write(tmp_path, {**FILES, ("02", "01"): [("wsj_0201.1", line)]})
  where = f"{auto}/02/wsj_0201.auto:2"
  with pytest.raises(ValueError, match=re.escape(f"{where}: malformed CCGbank derivation line")):
    load_ccgbank(str(tmp_path), "train")


def test_derivation_must_follow_its_id_line(tmp_path):
  auto = _write(tmp_path)
  path = auto / "02" / "wsj_0201.auto"
  path.write_text(f"ID=wsj_0201.1 PARSER=GOLD NUMPARSE=1\nID=wsj_0201.2 PARSER=GOLD NUMPARSE=1\n"
                  f"{SALES}\n")
  with pytest.raises(ValueError, match=re.escape(f"{path}:1: ID line without a derivation")):
    load_ccgbank(str(tmp_path), "train")
  path.write_text(f"{SALES}\n")
  with pytest.raises(ValueError, match=re.escape(f"{path}:1: malformed CCGbank derivation line")):
    load_ccgbank(str(tmp_path), "train")
  path.write_text(f"ID=wsj_0201.1 PARSER=GOLD NUMPARSE=1\n{SALES}\nID=wsj_0201.2 PARSER=GOLD\n")
  with pytest.raises(ValueError, match=re.escape(f"{path}:3: ID line without a derivation")):
    load_ccgbank(str(tmp_path), "train")


@pytest.mark.parametrize("line", ["Sales fell .\tN S[dcl]\\NP", "Sales fell .", "Sales  fell\tN N"])
def test_malformed_jiant_line_names_file_and_line(tmp_path, line):
  (tmp_path / "ccg.train").write_text(f"Yes\tN\n{line}\n")
  with pytest.raises(ValueError, match=r"ccg\.train:2: malformed jiant CCG line"):
    load_ccgbank(str(tmp_path), "train")
