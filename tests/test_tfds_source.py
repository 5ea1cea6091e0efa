"""The TFDS source: every task's rows come out in the hub source's columns and features.

The data is a tiny prepared TFDS data dir, written (ArrayRecord, no network) by the real builders
with their ``_split_generators`` replaced by fixed examples, so reading goes through real files.
"""

from __future__ import annotations

import json
import shutil
import sys
import types
from unittest import mock

import datasets
import numpy as np
import pytest
import tensorflow_datasets as tfds
import tensorflow_datasets.question_answering  # noqa: F401  registers xquad, tydi_qa
import tensorflow_datasets.text  # noqa: F401  registers glue, xnli, wikiann, super_glue
from tensorflow_datasets.text import super_glue

from xtjax.data import tfds_source
from xtjax.data.tasks import XNLI_LANGS
from xtjax.data.tfds_source import load_tfds

S, I32 = datasets.Value("string"), datasets.Value("int32")
NLI = ["entailment", "neutral", "contradiction"]
UPOS = ["ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON", "PROPN",
        "PUNCT", "SCONJ", "SYM", "VERB", "X"]
NER = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC"]
QA = {"id": S, "title": S, "context": S, "question": S,
      "answers": datasets.Sequence({"text": S, "answer_start": I32})}
PANX = {"tokens": datasets.Sequence(S),
        "ner_tags": datasets.Sequence(datasets.ClassLabel(names=NER)),
        "langs": datasets.Sequence(S)}
# The hub sources' schemas (google/xtreme, nyu-mll/glue, aps/super_glue, unimelb-nlp/wikiann).
HUB = {
    "mnli": datasets.Features({"premise": S, "hypothesis": S,
                               "label": datasets.ClassLabel(names=NLI), "idx": I32}),
    "xnli": datasets.Features({"sentence1": S, "sentence2": S, "language": S, "gold_label": S}),
    "pawsx": datasets.Features({"sentence1": S, "sentence2": S, "label": S}),
    "udpos": datasets.Features({"tokens": datasets.Sequence(S),
                                "pos_tags": datasets.Sequence(datasets.ClassLabel(names=UPOS))}),
    "panx": datasets.Features(PANX),
    "wikiann": datasets.Features({**PANX, "spans": datasets.Sequence(S)}),
    "squad": datasets.Features(QA),
    "xquad": datasets.Features({k: v for k, v in QA.items() if k != "title"}),
    "copa": datasets.Features({"premise": S, "choice1": S, "choice2": S, "question": S,
                               "label": datasets.ClassLabel(names=["choice1", "choice2"]),
                               "idx": I32}),
}
CASES = [  # task, split, language, hub schema, rows
    ("mnli", "train", None, "mnli", 2), ("mnli", "dev", None, "mnli", 1),
    ("mnli", "test", "en", "mnli", 1), ("xnli", "train", None, "mnli", 2),
    ("xnli", "dev", None, "xnli", 2), ("xnli", "test", "de", "xnli", 2),
    ("pawsx", "train", None, "pawsx", 2), ("pawsx", "dev", None, "pawsx", 1),
    ("pawsx", "test", "de", "pawsx", 2), ("udpos", "train", None, "udpos", 1),
    ("udpos", "dev", None, "udpos", 1), ("udpos", "test", "ta", "udpos", 1),
    ("udpos", "test", "tl", "udpos", 1), ("panx", "train", None, "panx", 1),
    ("panx", "dev", None, "panx", 1), ("panx", "test", "de", "panx", 1),
    ("panx", "test", "pl", "wikiann", 1), ("squad", "train", None, "squad", 1),
    ("squad", "dev", None, "squad", 1), ("squad", "test", "en", "squad", 1),
    ("xquad", "train", None, "squad", 1), ("xquad", "test", "de", "xquad", 1),
    ("mlqa", "dev", None, "squad", 1), ("mlqa", "test", "de", "squad", 1),
    ("tydiqa", "train", None, "squad", 2), ("tydiqa", "dev", None, "squad", 1),
    ("tydiqa", "test", "fi", "squad", 2), ("tydiqa", "test", "ar", "squad", 1),
    ("copa", "train", None, "copa", 2), ("copa", "test", "en", "copa", 1),
    ("xcopa", "dev", None, "copa", 1),
    ("xnli_translate_train", "train", "de", "mnli", 2),
    ("xnli_translate_train", "train", "fr", "mnli", 1),
    ("pawsx_translate_train", "train", "ja", "pawsx", 2),
    ("xquad_translate_train", "train", "de", "squad", 1),
]


def _nli(i, premise, label):
  return {"premise": premise, "hypothesis": f"h{i}", "label": label, "idx": i}


def _xnli(i, label):
  return {"premise": {l: f"p{i}-{l}" for l in XNLI_LANGS},
          "hypothesis": {l: f"h{i}-{l}" for l in XNLI_LANGS}, "label": label}


def _xtreme_xnli(i, label, hypothesis_langs):
  """xtreme_xnli's premise has every language (Translation); its hypothesis may lack some."""
  return {"premise": {l: f"p{i}-{l}" for l in XNLI_LANGS},
          "hypothesis": {l: f"h{i}-{l}" for l in hypothesis_langs}, "label": label}


def _pos(tokens, tags):
  return {"tokens": tokens, "upos": tags}


def _ner(lang, tokens, tags, spans=("None",)):
  return {"tokens": tokens, "tags": tags, "langs": [lang] * len(tokens), "spans": list(spans)}


def _qa(id_, context, answer):
  start = context.index(answer)
  return {"id": id_, "title": "T", "context": context, "question": f"q {id_}?",
          "answers": {"text": [answer], "answer_start": [start]}}


def _copa(i, label):
  return {"premise": f"p{i}", "choice1": f"a{i}", "choice2": f"b{i}", "question": "cause",
          "idx": i, "label": label}


DATA = {  # builder -> TFDS split -> examples
    "glue/mnli": {"train": [_nli(0, "m0", "neutral"), _nli(1, "m1", "contradiction")],
                  "validation_matched": [_nli(2, "m2", "entailment")],
                  "validation_mismatched": [_nli(3, "m3", "neutral")]},
    "xnli": {"validation": [_xnli(0, "neutral"), _xnli(1, "entailment")],
             "test": [_xnli(2, "contradiction"), _xnli(3, "neutral")]},
    "paws_x_wiki/en": {"train": [{"sentence1": "a", "sentence2": "b", "label": 1},
                                 {"sentence1": "c", "sentence2": "d", "label": 0}],
                       "validation": [{"sentence1": "e", "sentence2": "f", "label": 1}]},
    # Pair 1's hypothesis lacks most languages and is given unsorted: TranslationVariableLanguages
    # stores ar, de, zh, so "de" is its second translation, not XNLI_LANGS' third.
    "xtreme_xnli": {"train": [_xtreme_xnli(0, "neutral", XNLI_LANGS),
                              _xtreme_xnli(1, "contradiction", ("zh", "de", "ar"))]},
    "xtreme_pawsx/ja": {"train": [{"sentence1": "k", "sentence2": "l", "label": "paraphrase"},
                                  {"sentence1": "m", "sentence2": "n",
                                   "label": "different_meaning"}]},
    "paws_x_wiki/de": {"test": [{"sentence1": "g", "sentence2": "h", "label": 1},
                                {"sentence1": "i", "sentence2": "j", "label": 0}]},
    "xtreme_pos/xtreme_pos_en": {"train": [_pos(["Dogs", "bark", "."], ["NOUN", "VERB", "PUNCT"])],
                                 "dev": [_pos(["Hi"], ["INTJ"])]},
    # xtreme_pos 1.0.0 writes Tagalog into its "ta" config and Tamil into "tl".
    "xtreme_pos/xtreme_pos_ta": {"test": [_pos(["Kumain", "siya"], ["VERB", "PRON"])]},
    "xtreme_pos/xtreme_pos_tl": {"test": [_pos(["அவன்", "வந்தான்"], ["PRON", "VERB"])]},
    "xtreme_pos/xtreme_pos_fr": {"test": [_pos(["du", "le"], ["ADP", "_"])]},
    "wikiann/en": {"train": [_ner("en", ["Ann", "lives"], ["B-PER", "O"])],
                   "validation": [_ner("en", ["in", "Rome"], ["O", "B-LOC"])]},
    "wikiann/de": {"test": [_ner("de", ["Die", "UN"], ["O", "B-ORG"])]},
    "wikiann/pl": {"test": [_ner("pl", ["Jan", "Kowalski"], ["B-PER", "I-PER"],
                                 ["PER: Jan Kowalski"])]},
    "squad/v1.1": {"train": [_qa("s1", "Paris is in France.", "France")],
                   "validation": [_qa("s2", "It rains.", "rains")]},
    "xquad/de": {"test": [_qa("x1", "Berlin liegt an der Spree.", "Spree")],
                 "translate-train": [_qa("t1", "Paris liegt in Frankreich.", "Frankreich")]},
    "mlqa/de": {"test": [_qa("m1", "Bonn liegt am Rhein.", "Rhein")]},
    "tydi_qa/goldp": {
        "train": [_qa("english-1", "A b c.", "b"), _qa("finnish-2", "D e f.", "e"),
                  _qa("english-3", "G h i.", "h")],
        "validation": [_qa("english-4", "J k.", "k"), _qa("finnish-5", "L m.", "m"),
                       _qa("finnish-6", "N o.", "o"), _qa("arabic-7", "P q.", "q")]},
    "super_glue/copa": {"train": [_copa(0, 1), _copa(1, 0)], "validation": [_copa(2, 1)]},
}


def _prepare(data_dir, builder_name: str, splits: dict):
  """The real builder, fed these examples, writes its prepared ArrayRecord files."""
  cls = tfds.builder_cls(builder_name.split("/")[0])

  def split_generators(self, dl_manager):
    return {s: ((str(i), ex) for i, ex in enumerate(exs)) for s, exs in splits.items()}

  # super_glue's features name tf.int32; the same dtype from numpy keeps TensorFlow out.
  no_tf = mock.patch.object(super_glue, "tf", types.SimpleNamespace(int32=np.int32))
  with mock.patch.object(cls, "_split_generators", split_generators), no_tf:
    builder = tfds.builder(builder_name, data_dir=str(data_dir), file_format="array_record")
    builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(try_download_gcs=False))


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp("tfds")
  for name, splits in DATA.items():
    _prepare(root, name, splits)
  return str(root)


@pytest.mark.parametrize("task,split,language,hub,n", CASES)
def test_columns_and_features_are_the_hub_sources(data_dir, task, split, language, hub, n):
  ds = load_tfds(task, split, language, data_dir)
  assert ds.features == HUB[hub]
  assert sorted(ds.column_names) == sorted(HUB[hub])
  assert len(ds) == n


def test_reading_needs_no_tensorflow(data_dir):
  load_tfds("copa", "train", None, data_dir)
  assert "tensorflow" not in sys.modules


def _by(ds, column):
  return {row[column]: row for row in ds}


def test_classification_values(data_dir):
  mnli = _by(load_tfds("mnli", "train", None, data_dir), "premise")
  assert mnli["m1"] == {"premise": "m1", "hypothesis": "h1", "label": 2, "idx": 1}
  xnli = _by(load_tfds("xnli", "test", "de", data_dir), "sentence1")
  assert xnli["p2-de"] == {"sentence1": "p2-de", "sentence2": "h2-de", "language": "de",
                           "gold_label": "contradiction"}
  assert {r["language"] for r in load_tfds("xnli", "dev", "fr", data_dir)} == {"en"}
  paws = _by(load_tfds("pawsx", "test", "de", data_dir), "sentence1")
  assert (paws["g"]["label"], paws["i"]["label"]) == ("1", "0")
  copa = _by(load_tfds("copa", "train", None, data_dir), "premise")
  assert copa["p0"] == {"premise": "p0", "choice1": "a0", "choice2": "b0", "question": "cause",
                        "idx": 0, "label": 1}


def test_tagging_values_and_the_tamil_tagalog_swap(data_dir):
  def tags(task, split, language, column):
    ds = load_tfds(task, split, language, data_dir)
    names = ds.features[column].feature.int2str
    return [(row["tokens"], names(row[column])) for row in ds]

  assert tags("udpos", "train", None, "pos_tags") == [(["Dogs", "bark", "."],
                                                       ["NOUN", "VERB", "PUNCT"])]
  assert tags("udpos", "test", "ta", "pos_tags") == [(["அவன்", "வந்தான்"], ["PRON", "VERB"])]
  assert tags("udpos", "test", "tl", "pos_tags") == [(["Kumain", "siya"], ["VERB", "PRON"])]
  assert tags("panx", "test", "de", "ner_tags") == [(["Die", "UN"], ["O", "B-ORG"])]
  pl = load_tfds("panx", "test", "pl", data_dir)[0]
  assert (pl["langs"], pl["spans"]) == (["pl", "pl"], ["PER: Jan Kowalski"])


def test_a_pos_tag_outside_the_hubs_17_is_an_error(data_dir, monkeypatch):
  monkeypatch.setitem(tfds_source.TFDS_LANGUAGES, "udpos", ("fr",))
  with pytest.raises(ValueError, match="has the tag '_'"):
    load_tfds("udpos", "test", "fr", data_dir)


def test_qa_values_and_tydiqa_language_filter(data_dir):
  squad = load_tfds("squad", "train", None, data_dir)[0]
  assert squad == {"id": "s1", "title": "T", "context": "Paris is in France.",
                   "question": "q s1?", "answers": {"text": ["France"], "answer_start": [12]}}
  xquad = load_tfds("xquad", "test", "de", data_dir)[0]
  assert xquad["answers"] == {"text": ["Spree"], "answer_start": [20]} and "title" not in xquad
  assert sorted(load_tfds("tydiqa", "train", None, data_dir)["id"]) == ["english-1", "english-3"]
  assert load_tfds("tydiqa", "dev", None, data_dir)["id"] == ["english-4"]
  assert sorted(load_tfds("tydiqa", "test", "fi", data_dir)["id"]) == ["finnish-5", "finnish-6"]


def test_default_data_dir_is_tfds_data_dir(data_dir, monkeypatch):
  monkeypatch.setenv("TFDS_DATA_DIR", data_dir)
  assert load_tfds("copa", "dev", None)["premise"] == ["p2"]


def test_a_language_without_rows_is_an_error(data_dir):
  with pytest.raises(ValueError, match="tydi_qa/goldp:3.0.0 split validation has no rows for "
                                       "tydiqa test in language 'ko'"):
    load_tfds("tydiqa", "test", "ko", data_dir)


def test_translate_train_values(data_dir):
  de = load_tfds("xnli_translate_train", "train", "de", data_dir)
  assert sorted(zip(de["premise"], de["hypothesis"], de["label"])) == [("p0-de", "h0-de", 1),
                                                                       ("p1-de", "h1-de", 2)]
  assert sorted(de["idx"]) == [0, 1]  # the prepared order is shuffled
  for lang in ("ar", "zh", "sw"):
    rows = load_tfds("xnli_translate_train", "train", lang, data_dir)
    assert all(r["hypothesis"] == r["premise"].replace("p", "h") for r in rows)
  assert [r["idx"] for r in load_tfds("xnli_translate_train", "train", "fr", data_dir)] == [0]
  paws = _by(load_tfds("pawsx_translate_train", "train", "ja", data_dir), "sentence1")
  assert paws["k"] == {"sentence1": "k", "sentence2": "l", "label": "1"}
  assert paws["m"]["label"] == "0"
  squad = load_tfds("xquad_translate_train", "train", "de", data_dir)[0]
  assert squad == {"id": "t1", "title": "T", "context": "Paris liegt in Frankreich.",
                   "question": "q t1?", "answers": {"text": ["Frankreich"], "answer_start": [15]}}


class _EchoDownloads:
  """A download manager whose downloads are their urls: enough for the builders' split names."""

  def download_and_extract(self, urls):
    return urls


def test_translate_train_sources_are_the_builders(tmp_path):
  from tensorflow_datasets.question_answering import xquad
  from tensorflow_datasets.text.xtreme_pawsx import xtreme_pawsx
  from tensorflow_datasets.text.xtreme_xnli import xtreme_xnli
  assert tfds_source.TRANSLATE_TRAIN_LANGUAGES == {
      "xnli_translate_train": tuple(l for l in xtreme_xnli._LANGUAGES if l != "en"),
      "pawsx_translate_train": tuple(xtreme_pawsx._LANGUAGES),
      "xquad_translate_train": tuple(l for l in xquad.LANGUAGES if l != "en")}
  assert len(tfds_source.TRANSLATE_TRAIN_LANGUAGES["xnli_translate_train"]) == 14
  for task, langs in tfds_source.TRANSLATE_TRAIN_LANGUAGES.items():
    for lang in langs:
      name, split, _ = tfds_source.source(task, "train", lang)
      builder = tfds.builder(name, data_dir=str(tmp_path))  # the pinned version and config exist
      splits = builder._split_generators(_EchoDownloads())
      names = splits if isinstance(splits, dict) else [g.name for g in splits]
      assert split in names, (name, names)


def test_row_conversions():
  ex = {"premise": {"de": b"p"}, "label": 1,
        "hypothesis": {"language": np.array([b"de"]), "translation": np.array([b"h"])}}
  assert tfds_source._xnli(ex, "de") == {"sentence1": "p", "sentence2": "h", "language": "de",
                                         "gold_label": "neutral"}
  assert tfds_source._xnli(ex, "fr") is None
  assert tfds_source._xtreme_xnli(ex, "de") == {"premise": "p", "hypothesis": "h", "label": 1}
  assert tfds_source._xtreme_xnli(ex, "fr") is None
  qa = {"id": b"korean-9", "title": b"", "context": b"c", "question": b"q",
        "answers": {"text": np.array([b"c"]), "answer_start": np.array([0], np.int32)}}
  assert tfds_source._tydiqa(qa, "ko")["id"] == "korean-9"
  assert tfds_source._tydiqa(qa, "en") is None


@pytest.mark.parametrize("args,message", [
    (("xnlii", "dev", None), "no TFDS source for task 'xnlii': TFDS has mnli, xnli,"),
    (("siqa", "train", None), "no TFDS source for task 'siqa'"),
    (("xcopa", "test", "et"), "no TFDS source for split 'test' of task xcopa: it has train, dev"),
    (("pawsx", "validation", None), "split 'validation' of task pawsx: it has train, dev, test"),
    (("xquad", "test", "ro"), "language 'ro' of task xquad test: TFDS has ar, de, el,"),
    (("udpos", "test", None), "language None of task udpos test"),
    (("xnli_translate_train", "train", None),
     "language None of task xnli_translate_train train: TFDS has ar, bg, de, el, es, fr,"),
    (("xnli_translate_train", "train", "en"), "language 'en' of task xnli_translate_train train"),
    (("pawsx_translate_train", "train", "en"),
     "language 'en' of task pawsx_translate_train train: TFDS has de, es, fr, ja, ko, zh$"),
    (("xquad_translate_train", "train", "ro"), "language 'ro' of task xquad_translate_train"),
    (("xquad_translate_train", "test", "de"),
     "split 'test' of task xquad_translate_train: it has train$"),
])
def test_unknown_task_split_or_language(args, message):
  with pytest.raises(ValueError, match=message) as e:
    load_tfds(*args, data_dir="/nonexistent")
  assert "\n" not in str(e.value)


def test_missing_data_names_the_builder_dir_and_fix(tmp_path):
  with pytest.raises(FileNotFoundError) as e:
    load_tfds("xquad", "test", "el", str(tmp_path))
  msg = str(e.value)
  assert "\n" not in msg
  assert f"xquad/el:3.0.0 is not prepared in {tmp_path}" in msg
  assert f"tfds build xquad/el:3.0.0 --data_dir={tmp_path} --file_format=array_record" in msg


def test_tfrecord_data_needs_a_rebuild(data_dir, tmp_path):
  path = tmp_path / "paws_x_wiki" / "de" / "1.0.0"
  shutil.copytree(f"{data_dir}/paws_x_wiki/de/1.0.0", path)
  info = json.loads((path / "dataset_info.json").read_text())
  info["fileFormat"] = "tfrecord"
  (path / "dataset_info.json").write_text(json.dumps(info))
  with pytest.raises(FileNotFoundError, match="stored as tfrecord, which needs TensorFlow") as e:
    load_tfds("pawsx", "test", "de", str(tmp_path))
  assert "--file_format=array_record" in str(e.value) and "\n" not in str(e.value)
