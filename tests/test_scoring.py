"""XTREME metrics and the leaderboard-folder scorer against hand-worked values."""

from __future__ import annotations

import json

import pytest

from xtjax import metrics
from xtjax.scoring import (TASK_LANGUAGES, format_report, read_labels, read_predictions, score,
                           task_file, write_labels, write_predictions)


def test_accuracy():
  # 2 of 4 equal -> 50
  assert metrics.accuracy(["a", "b", "c", "a"], ["a", "b", "b", "b"]) == 50.0
  with pytest.raises(ValueError, match="3 predictions but 2 labels"):
    metrics.accuracy([1, 2, 3], [1, 2])


def test_ner_partial_entity_match():
  gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG"]]
  pred = [["B-PER", "O", "O", "B-LOC"], ["O"]]
  # gold entities PER[0:1], LOC[3], ORG; predicted PER[0] (wrong span), LOC[3] -> 1 correct
  # precision 1/2, recall 1/3, f1 = 2*(1/2)(1/3)/(5/6) = 0.4; tokens 3 of 5 equal
  s = metrics.tagging_scores(gold, pred)
  assert s["precision"] == pytest.approx(50.0)
  assert s["recall"] == pytest.approx(100 / 3)
  assert s["f1"] == pytest.approx(40.0)
  assert s["accuracy"] == pytest.approx(60.0)


def test_pos_f1_is_seqeval_chunk_f1_not_accuracy():
  # NOUN NOUN merges into one chunk: gold {NOUN[0:1], VERB[2]}, pred {NOUN[0], VERB[1:2]}
  s = metrics.tagging_scores([["NOUN", "NOUN", "VERB"]], [["NOUN", "VERB", "VERB"]])
  assert s["f1"] == 0.0
  assert s["accuracy"] == pytest.approx(200 / 3)
  # gold {DET[0], NOUN[1:2], VERB[3]}, pred {DET[0], NOUN[1], VERB[2:3]}: 1 of 3 each -> 33.3
  s = metrics.tagging_scores([["DET", "NOUN", "NOUN", "VERB"]], [["DET", "NOUN", "VERB", "VERB"]])
  assert s["f1"] == pytest.approx(100 / 3)
  assert s["accuracy"] == pytest.approx(75.0)
  # CCONJ and SCONJ both parse to type "CONJ": a wrong tag scores full chunk F1
  s = metrics.tagging_scores([["CCONJ"]], [["SCONJ"]])
  assert (s["f1"], s["accuracy"]) == (100.0, 0.0)


def test_squad_normalization():
  assert metrics.normalize_answer("The  Eiffel-Tower!") == "eiffeltower"
  assert metrics.normalize_answer("An apple, a day") == "apple day"
  # ASCII punctuation only: guillemets stay under SQuAD v1.1, MLQA removes them
  assert metrics.normalize_answer("«Paris»") == "«paris»"
  assert metrics.normalize_answer("«Paris»", "en") == "paris"
  # tokens [big, red, dog] vs [red, dog, barked]: 2 shared -> P = R = 2/3 -> F1 2/3
  assert metrics.f1_score("the big red dog", "a red dog barked") == pytest.approx(2 / 3)
  assert metrics.exact_match_score("The dog.", "dog")


def test_mlqa_normalization_zh():
  assert metrics.normalize_answer("北京大学。", "zh") == "北 京 大 学"
  assert metrics.normalize_answer("2008年北京", "zh") == "2008 年 北 京"
  # pred 5 chars all in gold's 7 tokens [2008 年 北 京 奥 运 会]: P 1, R 5/7 -> F1 10/12
  assert metrics.f1_score("北京奥运会", "2008年北京奥运会", "zh") == pytest.approx(10 / 12)
  # SQuAD normalisation sees two different whitespace tokens
  assert metrics.f1_score("北京奥运会", "2008年北京奥运会") == 0.0


def test_mlqa_normalization_ar_de_es():
  assert metrics.normalize_answer("الكتاب الجديد", "ar") == "كتاب جديد"
  assert metrics.normalize_answer("مالك", "ar") == "م ك"  # "ال" inside a word goes too
  assert metrics.normalize_answer("Der Hund des Mannes", "de") == "hund mannes"
  assert metrics.normalize_answer("La casa de los padres", "es") == "casa de padres"
  assert metrics.normalize_answer("the a", "hi") == "the a"
  with pytest.raises(ValueError, match="no MLQA normalisation for language 'fr'"):
    metrics.normalize_answer("x", "fr")


def test_qa_scores_missing_question_scores_zero(capsys):
  gold = {"q1": ["Paris"], "q2": ["the cat", "a dog"], "q3": ["x"]}
  pred = {"q1": "paris.", "q2": "big dog", "unknown": "y"}
  # q1: EM 1, F1 1; q2: best vs "a dog": EM 0, F1 2*(1/2)(1)/(3/2) = 2/3; q3 missing: 0
  s = metrics.qa_scores(pred, gold)
  assert s["exact_match"] == pytest.approx(100 / 3)
  assert s["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)
  assert "1 of 3 questions have no prediction" in capsys.readouterr().err



def test_qa_scores_squad_v2_with_unanswerable_questions(capsys):
  gold = {"a1": ["Paris"], "a2": ["the big red dog"], "a3": ["An", "red dog"],
          "n1": [], "n2": [], "n3": [], "n4": []}
  pred = {"a1": "paris.", "a2": "big dog", "a3": "", "n1": "", "n2": "The.", "n3": "London"}
  # a1: 1/1; a2: [big, dog] vs [big, red, dog]: P 1, R 2/3 -> EM 0, F1 0.8; a3: "An" normalises
  # to "" and is dropped, so "" misses "red dog": 0/0. n1 "" and n2 "the" (no tokens) match the
  # gold "": 1/1 each; n3 answers: 0/0; n4 missing: 0/0.
  s = metrics.qa_scores(pred, gold, version_2=True)
  assert "1 of 7 questions have no prediction" in capsys.readouterr().err
  assert s == pytest.approx({"exact_match": 300 / 7, "f1": 380 / 7,
                             "has_ans_exact_match": 100 / 3, "has_ans_f1": 60.0,
                             "no_ans_exact_match": 50.0, "no_ans_f1": 50.0})
  assert list(s)[:2] == ["exact_match", "f1"]
  answerable = {q: gold[q] for q in ("a1", "a2", "a3")}
  # v1.1 keeps "An": a3's "" matches it exactly (EM 1) but shares no token (F1 0)
  assert metrics.qa_scores(pred, answerable) == pytest.approx({"exact_match": 200 / 3,
                                                               "f1": 60.0})
  assert metrics.qa_scores(pred, answerable, version_2=True) == pytest.approx(
      {"exact_match": 100 / 3, "f1": 60.0, "has_ans_exact_match": 100 / 3, "has_ans_f1": 60.0})
  # v1.1 F1 of two empty answers is 0, v2.0's 1
  assert metrics.qa_scores({"q": "a"}, {"q": ["the"]}) == {"exact_match": 100.0, "f1": 0.0}
  assert metrics.qa_scores({"q": "a"}, {"q": []}, version_2=True) == {
      "exact_match": 100.0, "f1": 100.0, "no_ans_exact_match": 100.0, "no_ans_f1": 100.0}
  with pytest.raises(ValueError, match="question 'n1' has no gold answer"):
    metrics.qa_scores(pred, gold)
  with pytest.raises(ValueError, match="pass lang=None, not 'en'"):
    metrics.qa_scores(pred, gold, "en", version_2=True)

def test_bucc_f1():
  gold = [("de-1", "en-1"), ("de-2", "en-2"), ("de-3", "en-3"), ("de-4", "en-4")]
  pred = [("de-1", "en-1"), ("de-2", "en-2"), ("de-3", "en-9"), ("de-1", "en-1")]
  # 3 distinct predicted pairs, 2 correct: P 2/3, R 2/4, F1 = (2/3)/(7/6) = 4/7
  s = metrics.bucc_scores(pred, gold)
  assert s["precision"] == pytest.approx(200 / 3)
  assert s["recall"] == pytest.approx(50.0)
  assert s["f1"] == pytest.approx(400 / 7)
  assert metrics.bucc_scores([("a", "b")], gold) == {"f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_retrieval_map_at_20():
  gold = {"m1": ["Q1"], "m2": ["Q2 "], "m3": ["Q3"], "m4": ["Q4"]}
  pred = {"m1": ["Q1", "Q5"], "m2": ["Q9", "Q8", "Q2"], "m4": [f"X{i}" for i in range(20)] + ["Q4"]}
  # reciprocal ranks 1, 1/3, 0 (missing), 0 (rank 21 > 20) -> mean 1/3
  assert metrics.mewslix_map(pred, gold) == pytest.approx(100 / 3)
  # targets {a, b, c}: hits at ranks 1 and 3 -> (1/1 + 2/3) / min(3, 20) = 5/9; repeats count once
  targets = {"q": ["a", "b", "c"]}
  assert metrics.lareqa_map({"q": ["a", "x", "b", "y"]}, targets) == pytest.approx(500 / 9)
  assert metrics.lareqa_map({"q": ["a", "a", "b"]}, targets) == pytest.approx(500 / 9)
  # k = 2: only [a, x] counts -> 1 / min(3, 2)
  assert metrics.lareqa_map({"q": ["a", "x", "b"]}, targets, k=2) == pytest.approx(50.0)


def test_writers_and_readers_round_trip(tmp_path):
  cases = [
      ("xnli", "de", ["entailment", "neutral"], None),
      ("udpos", "de", [["NOUN", "VERB"], [], ["PUNCT"]], None),
      ("xquad", "de", {"q1": "Berlin", "q2": "die Stadt"}, {"q1": ["Berlin", "in Berlin"]}),
      ("xcopa", "et", [0, 1, 1], None),
      ("bucc2018", "de", [("de-1", "en-7"), ("de-2", "en-3")], None),
      ("tatoeba", "de", [3, 0, 12], None),
      ("mewslix", "de", {"m1": ["Q1", "Q2"]}, None),
      ("lareqa", "de", {"q1": ["c1", "c2"]}, None),
  ]
  for task, lang, pred, gold in cases:
    write_predictions(task, lang, pred, tmp_path / "p")
    write_labels(task, lang, pred if gold is None else gold, tmp_path / "l")
    assert read_predictions(task, lang, tmp_path / "p") == pred
    assert read_labels(task, lang, tmp_path / "l") == (pred if gold is None else gold)
  qa = json.loads((tmp_path / "l" / "xquad" / "test-de.json").read_text())
  assert qa["data"][0]["paragraphs"][0]["qas"][0] == {
      "id": "q1", "answers": [{"text": "Berlin"}, {"text": "in Berlin"}]}
  assert (tmp_path / "p" / "udpos" / "test-de.tsv").read_text() == "NOUN\nVERB\n\n\nPUNCT\n\n"
  with pytest.raises(ValueError, match="unknown task 'nli'"):
    task_file(tmp_path, "nli", "de")


def test_tag_reader_keeps_upstream_blank_line_semantics(tmp_path):
  path = tmp_path / "panx" / "test-de.tsv"
  path.parent.mkdir()
  path.write_text("B-PER\nI-PER\n\n\n  \nO\n")
  # as evaluate.read_tag: every blank line closes a sentence, the last one needs no blank line
  assert read_labels("panx", "de", tmp_path) == [["B-PER", "I-PER"], [], [], ["O"]]


def _perfect(task: str):
  """A small gold value per task; predictions equal to it score 100."""
  kind = {"pawsx": ["0", "1"], "xnli": ["entailment", "neutral"],
          "udpos": [["DET", "NOUN"], ["VERB"]], "panx": [["B-PER", "I-PER", "O"]],
          "xcopa": [0, 1], "bucc2018": [("de-1", "en-1")], "tatoeba": [0, 1],
          "mewslix": {"m1": ["Q1"]}, "lareqa": {"q1": ["c1"]}}
  if task in ("xquad", "mlqa", "tydiqa"):
    return {"q1": "Paris"}, {"q1": ["Paris"]}
  return kind[task], kind[task]


def _write_task(root, task, langs, pred_for=None):
  for lang in langs:
    pred, gold = _perfect(task)
    write_predictions(task, lang, pred if pred_for is None else pred_for(lang), root / "pred")
    write_labels(task, lang, gold, root / "gold")


def test_score_partial_xtreme_report(tmp_path):
  langs = TASK_LANGUAGES["xtreme"]
  # xnli: en 4/4, the other 14 languages 2/4 -> (100 + 14 * 50) / 15
  for lang in langs["xnli"]:
    write_labels("xnli", lang, ["a", "b", "c", "d"], tmp_path / "gold")
    write_predictions("xnli", lang, ["a", "b", "c", "d"] if lang == "en" else ["a", "b", "x", "x"],
                      tmp_path / "pred")
  # pawsx: 3/4 everywhere
  for lang in langs["pawsx"]:
    write_labels("pawsx", lang, ["0", "1", "1", "0"], tmp_path / "gold")
    write_predictions("pawsx", lang, ["0", "1", "1", "1"], tmp_path / "pred")
  # mlqa, 2 questions: en both exact (100/100); zh q1 exact, q2 F1 10/12 (EM 50, F1 91.67);
  # es de ar hi vi q1 exact, q2 missing (50/50)
  for lang in langs["mlqa"]:
    gold = {"q1": ["paris"], "q2": ["2008年北京奥运会" if lang == "zh" else "rome"]}
    pred = {"q1": "Paris", "q2": "北京奥运会" if lang == "zh" else "Rome"}
    if lang not in ("en", "zh"):
      del pred["q2"]
    write_labels("mlqa", lang, gold, tmp_path / "gold")
    write_predictions("mlqa", lang, pred, tmp_path / "pred")
  (tmp_path / "gold" / "xquad").mkdir()  # labels without predictions are not scored

  report = score(tmp_path / "pred", tmp_path / "gold", "xtreme")

  assert list(report) == ["classification", "pawsx", "xnli", "mlqa"]
  xnli = report["xnli"]
  assert list(xnli) == ["accuracy", "avg_accuracy", "avg_metric"]
  assert list(xnli["accuracy"]) == langs["xnli"]
  assert xnli["accuracy"]["en"] == 100.0 and xnli["accuracy"]["sw"] == 50.0
  assert xnli["avg_metric"] == pytest.approx(800 / 15)
  assert report["pawsx"]["avg_accuracy"] == pytest.approx(75.0)
  assert report["classification"] == pytest.approx((75 + 800 / 15) / 2)
  mlqa = report["mlqa"]
  assert mlqa["f1"]["zh"] == pytest.approx(100 * (1 + 10 / 12) / 2)
  assert mlqa["exact_match"]["de"] == 50.0
  em, f1 = (100 + 5 * 50 + 50) / 7, (100 + 5 * 50 + 100 * (1 + 10 / 12) / 2) / 7
  assert mlqa["avg_exact_match"] == pytest.approx(em)
  assert mlqa["avg_f1"] == pytest.approx(f1)
  assert mlqa["avg_metric"] == pytest.approx((em + f1) / 2)
  assert "all_task" not in report and "qa" not in report
  assert json.loads(format_report(report)) == report


def test_score_complete_xtreme_has_all_task(tmp_path):
  for task, langs in TASK_LANGUAGES["xtreme"].items():
    # tatoeba: index 1 wrong everywhere -> 50; every other task perfect
    _write_task(tmp_path, task, langs, (lambda lang: [0, 5]) if task == "tatoeba" else None)
  report = score(tmp_path / "pred", tmp_path / "gold", "xtreme")
  assert list(report)[:5] == ["all_task", "classification", "tagging", "qa", "retrieval"]
  assert report["all_task"] == pytest.approx((8 * 100 + 50) / 9)
  assert report["retrieval"] == pytest.approx(75.0)
  assert report["qa"] == report["tagging"] == 100.0
  assert report["udpos"]["avg_metric"] == report["udpos"]["avg_f1"] == 100.0
  assert report["bucc2018"]["f1"]["zh"] == 100.0

  only = score(tmp_path / "pred", tmp_path / "gold", "xtreme", tasks=["tatoeba", "bucc2018"])
  assert list(only) == ["retrieval", "bucc2018", "tatoeba"]
  assert "all_task" not in only


def test_score_complete_xtreme_r_category_mean(tmp_path):
  for task, langs in TASK_LANGUAGES["xtreme-r"].items():
    pred_for = {"xcopa": lambda lang: [0, 0],  # 1 of 2 -> 50
                "lareqa": lambda lang: {"q1": ["c9", "c1"]}}.get(task)  # AP@20 = (1/2)/1 -> 50
    _write_task(tmp_path, task, langs, pred_for)
  report = score(tmp_path / "pred", tmp_path / "gold", "xtreme-r")
  assert report["all_task"] == pytest.approx((8 * 100 + 2 * 50) / 10)
  assert report["classification"] == pytest.approx(75.0)
  assert report["multi_choice"] == pytest.approx(50.0)
  assert report["retrieval"] == 100.0  # upstream's group: tatoeba and mewslix only
  assert report["lareqa"]["avg_metric"] == report["lareqa"]["avg_map@20"] == pytest.approx(50.0)
  # categories: classification 75, structured 100, qa 100, retrieval (100 + 50 + 100) / 3
  assert report["category_mean"] == pytest.approx((75 + 100 + 100 + 250 / 3) / 4)
  assert report["mewslix"]["map@20"]["uk"] == 100.0


def test_score_errors(tmp_path):
  _write_task(tmp_path, "xnli", TASK_LANGUAGES["xtreme"]["xnli"])
  with pytest.raises(ValueError, match="unknown benchmark 'xtreme2'"):
    score(tmp_path / "pred", tmp_path / "gold", "xtreme2")
  with pytest.raises(ValueError, match="unknown xtreme-r task 'pawsx'"):
    score(tmp_path / "pred", tmp_path / "gold", "xtreme-r", tasks=["pawsx"])
  with pytest.raises(FileNotFoundError, match="pawsx is missing"):
    score(tmp_path / "pred", tmp_path / "gold", "xtreme", tasks=["pawsx"])

  write_predictions("xnli", "sw", ["entailment", "neutral", "neutral"], tmp_path / "pred")
  with pytest.raises(ValueError, match=r"xnli/test-sw.tsv has 3 lines but .*test-sw.tsv has 2"):
    score(tmp_path / "pred", tmp_path / "gold", "xtreme")

  (tmp_path / "pred" / "xnli" / "test-sw.tsv").unlink()
  with pytest.raises(FileNotFoundError, match=r"pred/xnli/test-sw.tsv is missing"):
    score(tmp_path / "pred", tmp_path / "gold", "xtreme")

  _write_task(tmp_path, "udpos", TASK_LANGUAGES["xtreme"]["udpos"])
  (tmp_path / "gold" / "udpos" / "test-af.tsv").write_text("DET\nNOUN\n\nVERB\nX\n")
  with pytest.raises(ValueError, match="sentence 1: 1 predicted tags but 2 gold tags"):
    score(tmp_path / "pred", tmp_path / "gold", "xtreme", tasks=["udpos"])
