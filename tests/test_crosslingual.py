"""The generalised cross-lingual pair builder: labels stay with their pairs, malformed positions
are dropped in every language, non-parallel test sets are refused."""

import pytest
from ml_collections import ConfigDict

from xtjax.analysis import crosslingual
from xtjax.data.hub import load_hub_dataset
from xtjax.data import synthetic
from xtjax.data.tasks import NLI_LABELS, get_task

LABELS = [0, 2, 1, 1, 0, 2]


def rows(lang, labels=LABELS, malformed=()):
  return [None if i in malformed else
          {"text_a": f"{lang} premise {i}", "text_b": f"{lang} hypothesis {i}", "label": label,
           "label_text": NLI_LABELS[label]}
          for i, label in enumerate(labels)]


def test_cross_pairs_keep_each_label_with_its_pair():
  columns, dropped = crosslingual.aligned({"en": rows("en"), "de": rows("de", malformed={3}),
                                           "fr": rows("fr", malformed={0})})
  assert dropped == 2
  kept = [1, 2, 4, 5]
  pairs = crosslingual.cross_pairs(columns, "de", "fr")
  assert pairs["text_a"] == [f"de premise {i}" for i in kept]
  assert pairs["text_b"] == [f"fr hypothesis {i}" for i in kept]
  assert pairs["label"] == [LABELS[i] for i in kept]
  same = crosslingual.cross_pairs(columns, "en", "en")
  assert same == {"text_a": [f"en premise {i}" for i in kept],
                  "text_b": [f"en hypothesis {i}" for i in kept], "label": pairs["label"],
                  "label_text": [NLI_LABELS[LABELS[i]] for i in kept]}


def test_languages_of_different_sizes_are_refused():
  with pytest.raises(ValueError, match=r"sizes differ \(en 6, ko 5\).*--languages"):
    crosslingual.aligned({"en": rows("en"), "ko": rows("ko", LABELS[:5])})


def test_languages_in_different_orders_are_refused():
  shifted = LABELS[1:] + LABELS[:1]
  with pytest.raises(ValueError, match=r"not parallel by position: row 0 has labels"):
    crosslingual.aligned({"en": rows("en"), "de": rows("de", shifted)})


def test_parallel_xnli_in_the_hub_schema(tmp_path):
  languages = ("en", "de", "zh")
  synthetic.write_nli_mirror(tmp_path, languages=languages, n_train=3, n_dev=4, n_test=9)
  data = ConfigDict(dict(hub_mirror=str(tmp_path)))
  task = get_task("xnli")
  columns, dropped = crosslingual.load_parallel(task, languages, data)
  test = load_hub_dataset(str(tmp_path / "google" / "xtreme"), "XNLI", "test")
  by_lang = {l: test.filter(lambda r: r["language"] == l) for l in languages}
  assert dropped == 0
  pairs = crosslingual.cross_pairs(columns, "zh", "de")
  assert pairs["text_a"] == by_lang["zh"]["sentence1"]
  assert pairs["text_b"] == by_lang["de"]["sentence2"]
  assert [NLI_LABELS[i] for i in pairs["label"]] == by_lang["en"]["gold_label"]
  dev, _ = crosslingual.load_parallel(task, languages, data, split="validation")
  validation = load_hub_dataset(str(tmp_path / "google" / "xtreme"), "XNLI", "validation")
  assert dev["de"]["text_a"] == validation.filter(lambda r: r["language"] == "de")["sentence1"]


def test_only_parallel_pair_tasks():
  with pytest.raises(ValueError, match="use xnli, pawsx, not 'udpos'"):
    crosslingual.load_parallel(get_task("udpos"), ["en"], ConfigDict(dict(hub_mirror=None)))
