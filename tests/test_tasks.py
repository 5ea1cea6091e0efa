"""Every task's loader on fixtures in the exact upstream schemas (tests/hub_fixtures.py): each
split and language loads into the fields of its kind, oddities are handled, malformed rows are
counted and reported (or fatal with data.strict), and evaluation batching is batch-size proof."""

import datasets
import numpy as np
import pytest
from ml_collections import ConfigDict

from xtjax import kinds, scoring
from xtjax.data.hub import load_hub_dataset
from xtjax.data import batches, pipeline, tasks
from xtjax.data import rows as rows_lib
from xtjax.models.loading import load_tokenizer


def data_config(hub, strict=False):
  return ConfigDict(dict(source="hub", hub_mirror=hub, tfds_data_dir=None, strict=strict))


def test_task_languages_cover_both_benchmarks():
  for benchmark, langs in scoring.TASK_LANGUAGES.items():
    for name, codes in langs.items():
      if name in tasks.TASKS:
        assert set(codes) <= set(tasks.TASKS[name].languages), (benchmark, name)


# The target tasks (and what they train on); tests/test_intermediate.py covers the others.
TARGET_TASKS = ("mnli", "xnli", "pawsx", "udpos", "panx", "squad", "xquad", "mlqa", "tydiqa",
                "siqa", "copa", "xcopa")


@pytest.mark.slow
@pytest.mark.parametrize("name", TARGET_TASKS)
def test_every_split_and_language_loads(name, xtreme_assets):
  hub, _ = xtreme_assets
  task = tasks.get_task(name)
  data = data_config(hub)
  for split in ("train", "dev"):
    rows, report = pipeline.load_rows(task, split, None, data)
    assert report["kept"] == len(rows) > 0
  for lang in task.split_languages("dev"):  # the paper's grid evaluates on these
    rows, report = pipeline.load_rows(task, "dev", lang, data)
    assert report["kept"] == len(rows) > 0, (name, lang)
  for lang in task.languages:
    rows, report = pipeline.load_rows(task, "test", lang, data)
    assert report == {"rows": len(rows), "kept": len(rows), "malformed": {}}, (name, lang)
    assert len(rows) in (6, 12, 6 * len(tasks.UD27_TREEBANKS.get(lang, ()))), (name, lang)
    row = rows[0]
    if task.kind == "classification":
      assert set(row) == {"text_a", "text_b", "label", "label_text"}
      assert row["label_text"] == task.labels[row["label"]]
    elif task.kind == "token_classification":
      assert len(row["tokens"]) == len(row["tags"]) and max(row["tags"]) < task.num_labels
    elif task.kind == "question_answering":
      a = row["answers"]
      assert row["context"][a["answer_start"][0]:][:len(a["text"][0])] == a["text"][0]
    else:
      assert len(row["choices"]) == task.num_labels
      assert row["question"] in ("cause", "effect") or row["question"].endswith("?")


def test_upstream_oddities(xtreme_assets):
  hub, _ = xtreme_assets
  data = data_config(hub)
  # TyDiQA: the language is the id prefix of one mixed config; English only for training.
  rows, _ = pipeline.load_rows(tasks.get_task("tydiqa"), "train", None, data)
  assert all(i.startswith("english-") for i in rows["id"])
  rows, _ = pipeline.load_rows(tasks.get_task("tydiqa"), "test", "sw", data)
  assert all(i.startswith("swahili-") for i in rows["id"]) and len(rows) == 6
  # XNLI: one config, filtered on the language column; PAWS-X: string labels.
  rows, _ = pipeline.load_rows(tasks.get_task("xnli"), "test", "th", data)
  assert len(rows) == 6 and " " not in rows[0]["text_a"]
  # XNLI trains on MNLI: ClassLabel ids map through their names.
  mnli = load_hub_dataset(f"{hub}/nyu-mll/glue", "mnli", "train")
  rows, _ = pipeline.load_rows(tasks.get_task("xnli"), "train", None, data)
  names = mnli.features["label"].names
  assert [tasks.NLI_LABELS[l] for l in rows["label"]] == [names[l] for l in mnli["label"]]
  # UD v2.7 treebanks are merged per language and their 18-class upos mapped by name.
  import hub_fixtures
  ud = load_hub_dataset(f"{hub}/universal-dependencies/universal_dependencies", "pl_pdb",
                        "test")
  rows, _ = pipeline.load_rows(tasks.get_task("udpos"), "test", "pl", data)
  assert len(rows) == 18
  # Multi-word token lines (upos "_") are left out of the sentence, as XTREME reads words only.
  upos = [[hub_fixtures.UD27_UPOS[t] for t in s] for s in ud["upos"]]
  assert any("_" in s for s in upos)
  words = [[w for w, t in zip(ws, s) if t != "_"] for ws, s in zip(ud["tokens"], upos)]
  assert [[tasks.UPOS_TAGS[t] for t in s] for s in rows["tags"][6:12]] == [
      [t for t in s if t != "_"] for s in upos]
  assert rows["tokens"][6:12] == words
  # COPA's question ("cause"/"effect") reads as jiant's wording by default, as XTREME's prompt
  # with data.mc_prompt; SocialIQA's labels count from 1.
  rows, _ = pipeline.load_rows(tasks.get_task("xcopa"), "test", "qu", data)
  assert set(rows["question"]) <= {"cause", "effect"}
  prompt = lambda p: ConfigDict(dict(mc_prompt=p))
  assert kinds.mc_first_segment("It rained.", "effect", prompt("{premise} {question}")) == (
      "It rained. What happened as a result?")
  assert kinds.mc_first_segment("It rained.", "cause", prompt(
      "{premise} What was the {connective}?")) == "It rained. What was the cause?"
  siqa = load_hub_dataset(f"{hub}/allenai/social_i_qa", None, "validation")
  rows, _ = pipeline.load_rows(tasks.get_task("siqa"), "dev", None, data)
  assert list(rows["label"]) == [int(l) - 1 for l in siqa["label"]]


def test_malformed_rows_are_reported_or_fatal(xtreme_assets):
  hub, _ = xtreme_assets
  _, report = pipeline.load_rows(tasks.get_task("squad"), "train", None, data_config(hub))
  assert report == {"rows": 48, "kept": 47, "malformed": {"answer_start out of range": 1}}
  with pytest.raises(ValueError, match=r"SQuAD, split train\): 1 malformed rows .*data.strict"):
    pipeline.load_rows(tasks.get_task("squad"), "train", None, data_config(hub, strict=True))


def test_malformed_test_rows_are_kept_and_scored_as_the_official_scorer():
  """Evaluation keeps every row (counted when malformed): the gold line holds the upstream
  label, which no prediction matches, so the row counts as wrong, as in evaluate.py."""
  task = tasks.get_task("pawsx")
  ds = datasets.Dataset.from_dict({"sentence1": ["a", "b", "", "d"], "sentence2": ["w", "x", "y", "z"],
                                   "label": ["0", "2", "1", "1"]})
  source = task.source("test", "en")
  kind = kinds.get(task.kind)
  rows, report = rows_lib.normalize(ds, source, task, kind, training=False)
  assert len(rows) == 4 and report["kept"] == 4
  assert report["malformed"] == {"label '2' not in ['0', '1']": 1, "missing text": 1}
  gold = kind.gold(task, rows[:])
  assert gold == ["0", "2", "1", "1"]
  assert kind.score(task, ["0", "1", "1", "0"], gold, "en") == {"accuracy": 50.0}
  train, report = rows_lib.normalize(ds, source, task, kind, training=True)
  assert len(train) == 2 and report["kept"] == 2
  # A QA test row whose answer_start is off (the hub's stripping) is a fine test row: only
  # training reads answer positions.
  squad = tasks.get_task("squad")
  qa_rows = datasets.Dataset.from_dict({"id": ["q1"], "question": ["Who?"], "context": ["Ann came."],
                                        "answers": [{"text": ["Ann"], "answer_start": [3]}]})
  _, report = rows_lib.normalize(qa_rows, squad.source("test", "en"), squad,
                                 kinds.get("question_answering"), training=False)
  assert report == {"rows": 1, "kept": 1, "malformed": {}}
  with pytest.raises(ValueError, match="every row is malformed"):
    rows_lib.normalize(ds.select([1]), source, task, kind, training=False)
  unanswered = qa_rows.map(lambda r: {"answers": {"text": [], "answer_start": []}})
  with pytest.raises(ValueError, match="SQuAD, split validation.*question 'q1' has no answer"):
    rows_lib.normalize(unanswered, squad.source("test", "en"), squad,
                       kinds.get("question_answering"), training=False)


def test_script_only_repos_are_read_at_their_parquet_revision(tmp_path, monkeypatch):
  """datasets >= 4 runs no loading scripts: SocialIQA, CosmosQA and UD 2.7 pin the hub's Parquet
  conversion; a mirror holding only the script says which revision to mirror."""
  for name in ("siqa", "cosmosqa"):
    assert {s.revision for s in tasks.get_task(name).sources("train")} == {tasks.PARQUET}
  assert tasks.get_task("udpos").source("test", "pl").revision == tasks.PARQUET
  assert tasks.get_task("xnli").source("test", "de").revision is None
  script_only = tmp_path / "allenai" / "social_i_qa"
  script_only.mkdir(parents=True)
  (script_only / "social_i_qa.py").write_text("# a loading script\n")
  with pytest.raises(FileNotFoundError, match="social_i_qa holds only a loading script.*"
                     "allenai/social_i_qa at revision refs/convert/parquet"):
    pipeline.load_rows(tasks.get_task("siqa"), "train", None, data_config(str(tmp_path)))
  seen = []
  monkeypatch.setattr(pipeline.hub.datasets, "load_dataset",
                      lambda path, config, split, revision: seen.append((path, revision)) or
                      datasets.Dataset.from_dict({"context": ["c"], "question": ["q"],
                                                  "answerA": ["a"], "answerB": ["b"],
                                                  "answerC": ["c"], "label": ["1"]}))
  pipeline.load_rows(tasks.get_task("siqa"), "train", None, data_config(None))
  assert seen == [("allenai/social_i_qa", "refs/convert/parquet")]


def test_unknown_names_are_clear_errors(xtreme_assets):
  with pytest.raises(ValueError, match="unknown task 'xnlii': xtjax knows"):
    tasks.get_task("xnlii")
  with pytest.raises(ValueError, match="unknown language 'xx' for task panx: it has af"):
    tasks.get_task("panx").source("test", "xx")
  with pytest.raises(ValueError, match="unknown data.source 'gcs'"):
    pipeline.load_rows(tasks.get_task("xnli"), "dev", None,
                       ConfigDict(dict(source="gcs", hub_mirror=None, strict=False)))


def test_eval_batches_bucket_lengths_and_cover_every_row_once(xtreme_assets):
  hub, model = xtreme_assets
  task = tasks.get_task("panx")
  rows, _ = pipeline.load_rows(task, "test", "de", data_config(hub))
  tok = load_tokenizer(model)
  data = data_config(hub)
  data.max_length = 128
  features = kinds.get(task.kind).encode(rows[:], tok, data, training=False, pair=False)
  buckets = (16, 32, 64)
  lengths = features["attention_mask"].sum(-1)
  seen, shapes, filled = [], [], []
  for batch, idx in batches.eval_batches(features, ("input_ids", "attention_mask", "labels"), 4, buckets):
    length = batch["input_ids"].shape[1]
    assert length in (16, 32, 64, 128) and (lengths[idx] <= length).all()
    assert batch["example_mask"].sum() == len(idx) and batch["input_ids"].shape[0] == 4
    np.testing.assert_array_equal(batch["labels"][:len(idx)], features["labels"][idx][:, :length])
    seen += list(idx)
    shapes.append(length)
    filled.append(len(idx))
  assert sorted(seen) == list(range(batches.num_rows(features)))
  # Shorter buckets first, and only the last batch part empty: each bucket's leftover rows ride
  # in the next bucket's first batch.
  assert shapes == sorted(shapes) and all(f == 4 for f in filled[:-1])
  assert len(set(shapes)) == batches.count_buckets(features, buckets, 4) > 1
